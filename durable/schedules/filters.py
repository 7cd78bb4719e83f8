"""Filters: predicates on a clock event's start time, with Prefect 1's names.

A filter receives the event's start time as a pendulum DateTime in its clock's zone
(`ClockEvent.local_start_time`), so `at_time`, `is_weekday` and the others read local
wall-clock time. Factories return small
picklable objects with a readable repr, so a registered schedule can be stored and shown.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time

from pendulum import DateTime

from durable.errors import ConfigurationError
from durable.schedules import inputs
from durable.schedules.zones import utc

Filter = Callable[[DateTime], bool]
"""Any callable that takes an event's start time and says whether to keep it."""


@dataclass(frozen=True, slots=True, repr=False)
class Check:
    """A filter made by a factory: `test(when, *args)`, shown as `name(*args)`."""

    name: str
    test: Callable[..., bool]
    args: tuple[object, ...]

    def __call__(self, when: DateTime) -> bool:
        return self.test(when, *self.args)

    def __repr__(self) -> str:
        return f"{self.name}({', '.join(repr(arg) for arg in self.args)})"


def on_datetime(dt: datetime) -> Filter:
    """Keep only an event at exactly the instant `dt` (a naive one is UTC)."""
    return Check("on_datetime", _is_at, (inputs.instant(dt, where="on_datetime dt"),))


def on_date(month: int, day: int) -> Filter:
    """Keep events on a day of the year, e.g. `on_date(12, 25)` for Christmas."""
    return Check("on_date", _is_on, _month_day("on_date", month, day))


def at_time(t: time) -> Filter:
    """Keep events at exactly the local wall-clock time `t`, e.g. `time(9, 30)`."""
    return Check("at_time", _is_at_time, (_local_time("at_time t", t),))


def between_datetimes(start: datetime, end: datetime) -> Filter:
    """Keep events from instant `start` to instant `end`, both included."""
    low = inputs.instant(start, where="between_datetimes start")
    high = inputs.instant(end, where="between_datetimes end")
    if high < low:
        raise ConfigurationError(
            f"between_datetimes end {high} is before start {low}; swap them"
        )
    return Check("between_datetimes", _is_between, (low, high))


def between_times(start: time, end: time) -> Filter:
    """Keep events whose local time is from `start` to `end`, both included.

    When `start` is later than `end` the window wraps midnight: `between_times(time(22),
    time(2))` keeps 22:00 to 02:00.
    """
    low = _local_time("between_times start", start)
    high = _local_time("between_times end", end)
    return Check("between_times", _is_between_times, (low, high))


def between_dates(
    start_month: int, start_day: int, end_month: int, end_day: int
) -> Filter:
    """Keep events from one day of the year to another, both included.

    When the start comes later in the year than the end the window wraps the new year:
    `between_dates(12, 1, 1, 31)` keeps December and January.
    """
    low = _month_day("between_dates start", start_month, start_day)
    high = _month_day("between_dates end", end_month, end_day)
    return Check("between_dates", _is_between_dates, (low, high))


def is_weekday(dt: datetime) -> bool:
    """Keep events from Monday to Friday."""
    return dt.weekday() < 5


def is_weekend(dt: datetime) -> bool:
    """Keep events on Saturday and Sunday."""
    return dt.weekday() > 4


def is_month_start(dt: datetime) -> bool:
    """Keep events on the first day of a month."""
    return dt.day == 1


def is_month_end(dt: datetime) -> bool:
    """Keep events on the last day of a month."""
    return dt.day == calendar.monthrange(dt.year, dt.month)[1]


def is_day_of_week(day_of_week: int) -> Filter:
    """Keep events on one day of the week: 0 is Monday, 6 is Sunday."""
    day = inputs.whole_number(
        day_of_week, where="is_day_of_week day_of_week (0 is Monday)", low=0, high=6
    )
    return Check("is_day_of_week", _is_day_of_week, (day,))


def _is_at(when: DateTime, instant: DateTime) -> bool:
    # Compared in UTC: PEP 495 makes a time in a repeated hour unequal to other zones'.
    return utc(when) == utc(instant)


def _is_on(when: DateTime, month: int, day: int) -> bool:
    return (when.month, when.day) == (month, day)


def _is_at_time(when: DateTime, t: time) -> bool:
    return when.time() == t


def _is_between(when: DateTime, low: DateTime, high: DateTime) -> bool:
    return utc(low) <= utc(when) <= utc(high)


def _is_between_times(when: DateTime, low: time, high: time) -> bool:
    now = when.time()
    if low <= high:
        return low <= now <= high
    return now >= low or now <= high


def _is_between_dates(
    when: DateTime, low: tuple[int, int], high: tuple[int, int]
) -> bool:
    day = (when.month, when.day)
    if low <= high:
        return low <= day <= high
    return day >= low or day <= high


def _is_day_of_week(when: DateTime, day: int) -> bool:
    return when.weekday() == day


def _month_day(where: str, month: int, day: int) -> tuple[int, int]:
    """Check a (month, day) pair; February 29 is allowed (leap years have it)."""
    month = inputs.whole_number(month, where=f"{where} month", low=1, high=12)
    last = calendar.monthrange(2000, month)[1]  # 2000 is a leap year
    return month, inputs.whole_number(day, where=f"{where} day", low=1, high=last)


def _local_time(where: str, value: object) -> time:
    """Check a wall-clock time of day, which must not carry a zone."""
    if not isinstance(value, time) or value.tzinfo is not None:
        raise ConfigurationError(
            f"{where} must be a time of day without a zone, not {value!r}; "
            "write e.g. time(9, 30) (it is read in the clock's zone)"
        )
    return value
