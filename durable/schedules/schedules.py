"""Schedule: clocks merged, filtered and adjusted, with Prefect 1's names.

A schedule is pure: `schedule.next(n, after=t)` depends only on the schedule and `t`.
It never reads the clock, so `after` is required; the worker passes its time source's
`now()`. Start times come back in UTC; filters and adjustments see them in each clock's
zone.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal, overload

import pendulum
from pendulum import DateTime

from durable.errors import ConfigurationError
from durable.schedules import inputs
from durable.schedules.adjustments import Adjustment
from durable.schedules.clocks import (
    Clock,
    ClockEvent,
    CronClock,
    IntervalClock,
    RRuleClock,
)
from durable.schedules.filters import Filter
from durable.schedules.zones import utc
from durable.timesource import SYSTEM_TIME

logger = logging.getLogger(__name__)

MAX_SCAN = 10_000
"""Clock events examined in a row without one passing the filters before giving up, so a
schedule whose filters never match cannot spin (Prefect 1 used the same number)."""


class Schedule:
    """Clocks whose events are merged, filtered, then adjusted."""

    def __init__(
        self,
        clocks: Iterable[Clock],
        filters: Iterable[Filter] | None = None,
        or_filters: Iterable[Filter] | None = None,
        not_filters: Iterable[Filter] | None = None,
        adjustments: Iterable[Adjustment] | None = None,
    ) -> None:
        """Check and keep the parts.

        Args:
            clocks: at least one clock; their events are merged in time order, and an
                event two clocks share (same time, parameters and labels) fires once.
            filters: an event is kept only if every one of these returns True.
            or_filters: if given, an event is kept only if at least one returns True.
            not_filters: an event is kept only if none of these returns True.
            adjustments: applied in order to each kept event's start time.
        """
        if isinstance(clocks, Clock) or not isinstance(clocks, Iterable):
            raise ConfigurationError(
                f"Schedule clocks must be a list of clocks, not {clocks!r}; "
                "write e.g. Schedule(clocks=[IntervalClock(timedelta(hours=1))])"
            )
        self.clocks = list(clocks)
        """The clocks whose events are merged."""
        if not self.clocks or not all(isinstance(c, Clock) for c in self.clocks):
            raise ConfigurationError(
                f"Schedule clocks must hold at least one clock, and only clocks, not "
                f"{self.clocks!r}; write e.g. [CronClock('0 9 * * *')]"
            )
        self.filters = _callables(filters, "filters")
        """Filters that must all pass."""
        self.or_filters = _callables(or_filters, "or_filters")
        """Filters of which one must pass, if any are given."""
        self.not_filters = _callables(not_filters, "not_filters")
        """Filters none of which may pass."""
        self.adjustments = _callables(adjustments, "adjustments")
        """Adjustments applied in order to kept events."""

    def __repr__(self) -> str:
        return f"Schedule(clocks={self.clocks!r}, filters={self.filters!r})"

    @property
    def start_date(self) -> DateTime | None:
        """The earliest start_date of the clocks, or None if none has one."""
        return min((c.start_date for c in self.clocks if c.start_date), default=None)

    @property
    def end_date(self) -> DateTime | None:
        """The latest end_date of the clocks, or None if none has one."""
        return max((c.end_date for c in self.clocks if c.end_date), default=None)

    @overload
    def next(
        self,
        n: int,
        after: datetime | None = None,
        return_events: Literal[False] = False,
    ) -> list[DateTime]: ...

    @overload
    def next(
        self, n: int, after: datetime | None, return_events: Literal[True]
    ) -> list[ClockEvent]: ...

    @overload
    def next(
        self, n: int, after: datetime | None = None, *, return_events: Literal[True]
    ) -> list[ClockEvent]: ...

    def next(
        self, n: int, after: datetime | None = None, return_events: bool = False
    ) -> list[DateTime] | list[ClockEvent]:
        """Return the next `n` start times (or ClockEvents) strictly after `after`.

        Args:
            n: how many to return; fewer come back if the clocks end, or if MAX_SCAN
                events in a row fail the filters.
            after: the instant to look after; None means now, read once through the
                system time source (pass it explicitly to stay pure and testable).
            return_events: return ClockEvents (with parameter_defaults and labels)
                instead of start times.
        """
        count = inputs.whole_number(n, where="Schedule.next n", low=0, high=10**9)
        if after is None:  # Prefect 1's convenience: from now (code should pass after=)
            after = SYSTEM_TIME.now()
        events = list(itertools.islice(self.events(after), count))
        if return_events:
            return events
        return [event.start_time for event in events]

    def events(self, after: datetime) -> Iterator[ClockEvent]:
        """Yield the kept, adjusted events strictly after `after`, in clock order.

        Adjustments run after the filters and may reorder events; one that lands on the
        event just yielded (e.g. Saturday and Sunday both moved to Monday) is dropped.
        """
        inputs.instant(after, where="Schedule.events after")
        rejected = 0
        previous: ClockEvent | None = None
        for event in self._merged(after):
            if not self._passes(event.local_start_time):
                rejected += 1
                if rejected >= MAX_SCAN:
                    logger.warning(
                        "schedule stopped: %d clock events in a row after %s failed "
                        "its filters",
                        MAX_SCAN,
                        event.start_time,
                    )
                    return
                continue
            rejected = 0
            event = self._adjusted(event)
            if previous is None or not _same(event, previous):
                previous = event
                yield event

    def _merged(self, after: datetime) -> Iterator[ClockEvent]:
        """Merge the clocks' events in time order, dropping exact duplicates."""
        # Clocks give UTC start times, so plain comparisons order and group them.
        merged = heapq.merge(
            *(clock.events(after) for clock in self.clocks),
            key=lambda event: event.start_time,
        )
        for _, group in itertools.groupby(merged, key=lambda e: e.start_time):
            seen: list[ClockEvent] = []
            for event in group:
                if not any(_same(event, other) for other in seen):
                    seen.append(event)
                    yield event

    def _passes(self, when: DateTime) -> bool:
        """Return whether an event at `when` passes every kind of filter."""
        return (
            all(check(when) for check in self.filters)
            and (not self.or_filters or any(check(when) for check in self.or_filters))
            and not any(check(when) for check in self.not_filters)
        )

    def _adjusted(self, event: ClockEvent) -> ClockEvent:
        """Return `event` with every adjustment applied to its local start time."""
        if not self.adjustments:
            return event
        start_time = event.local_start_time
        for adjustment in self.adjustments:
            start_time = adjustment(start_time)
        moved = inputs.instant(start_time, where="an adjustment's result")
        return replace(event, start_time=moved.in_timezone(pendulum.UTC))


def IntervalSchedule(  # noqa: N802 (Prefect 1's name for a factory)
    start_date: datetime | None = None,
    interval: timedelta | None = None,
    end_date: datetime | None = None,
) -> Schedule:
    """Return a Schedule with one IntervalClock, as Prefect 1's IntervalSchedule."""
    if interval is None:
        raise ConfigurationError(
            "IntervalSchedule needs an interval; write e.g. "
            "IntervalSchedule(start_date=..., interval=timedelta(minutes=5))"
        )
    return Schedule(clocks=[IntervalClock(interval, start_date, end_date)])


def CronSchedule(  # noqa: N802 (Prefect 1's name for a factory)
    cron: str,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    day_or: bool = True,
    *,
    timezone: str | None = None,
) -> Schedule:
    """Return a Schedule with one CronClock, as Prefect 1's CronSchedule."""
    clock = CronClock(cron, start_date, end_date, day_or=day_or, timezone=timezone)
    return Schedule(clocks=[clock])


def RRuleSchedule(  # noqa: N802 (Prefect 1's name for a factory)
    rrule_obj: Any, start_date: datetime | None = None, end_date: datetime | None = None
) -> Schedule:
    """Return a Schedule with one RRuleClock, as Prefect 1's RRuleSchedule."""
    return Schedule(clocks=[RRuleClock(rrule_obj, start_date, end_date)])


def _same(one: ClockEvent, other: ClockEvent) -> bool:
    """Return whether two events are the same run: instant, parameters and labels."""
    return (
        utc(one.start_time) == utc(other.start_time)
        and one.parameter_defaults == other.parameter_defaults
        and one.labels == other.labels
    )


def _callables(values: Iterable[Callable[..., Any]] | None, name: str) -> list[Any]:
    """Check a list of filters or adjustments: each must be callable."""
    if values is None:
        return []
    if callable(values) or not isinstance(values, Iterable):
        raise ConfigurationError(
            f"Schedule {name} must be a list of functions, not {values!r}; "
            f"write e.g. {name}=[filters.is_weekday]"
        )
    found = list(values)
    for value in found:
        if not callable(value):
            raise ConfigurationError(
                f"Schedule {name} must hold functions, not {value!r}; "
                f"write e.g. {name}=[filters.is_weekday]"
            )
    return found
