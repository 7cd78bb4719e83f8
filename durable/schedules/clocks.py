"""Clocks: pure sources of the times a flow should run, with Prefect 1's names.

A clock never reads the current time: `clock.events(after)` yields the events strictly
after the instant it is given, in order. Start times are UTC pendulum DateTimes; each
event also carries the clock's zone, in which filters and adjustments read it.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pendulum
from dateutil import rrule  # type: ignore[import-untyped]
from pendulum import DateTime

from durable.errors import ConfigurationError
from durable.schedules import inputs
from durable.schedules.cron import CronExpression
from durable.schedules.inputs import Zone
from durable.schedules.zones import resolve, utc

PREFECT_EPOCH = pendulum.datetime(2019, 1, 1, tz="UTC")
"""IntervalClock's anchor when no start_date is given, as in Prefect 1."""

ONE_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ClockEvent:
    """One time a clock fires, with the parameters and labels its run gets."""

    start_time: DateTime
    """When the run is scheduled, in UTC."""
    parameter_defaults: dict[str, Any] = field(default_factory=dict)
    """Parameter values for this run, merged over the flow's defaults."""
    labels: list[str] = field(default_factory=list)
    """Labels for this run."""
    timezone: Zone = pendulum.UTC
    """The clock's zone: where filters and adjustments read the start time."""

    @property
    def local_start_time(self) -> DateTime:
        """The start time in the clock's zone, as filters and adjustments see it.

        Prefect 1 returned this as `start_time`. durable returns UTC because, by PEP 495,
        a local time in a fall-back's repeated hour compares unequal (`!=`) to every
        datetime in another zone, which would break equality, sets and unique keys.
        """
        if self.timezone is pendulum.UTC:
            return self.start_time
        return self.start_time.in_timezone(self.timezone)


class Clock(abc.ABC):
    """A pure source of ClockEvents between an optional start and end date."""

    def __init__(
        self,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Check and keep the settings every clock shares.

        Args:
            start_date: no event before this instant; a naive datetime is read as UTC.
            end_date: no event after this instant.
            parameter_defaults: parameter values that runs from this clock get.
            labels: labels that runs from this clock get.
        """
        name = type(self).__name__
        self.start_date = inputs.optional_instant(
            start_date, where=f"{name} start_date"
        )
        """The first instant an event may have, or None."""
        self.end_date = inputs.optional_instant(end_date, where=f"{name} end_date")
        """The last instant an event may have, or None."""
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ConfigurationError(
                f"{name} end_date {self.end_date} is before start_date "
                f"{self.start_date}; write an end_date after the start_date"
            )
        self.parameter_defaults = inputs.parameter_defaults(
            parameter_defaults, where=f"{name} parameter_defaults"
        )
        """Parameter values that runs from this clock get."""
        self.labels = inputs.labels(labels, where=f"{name} labels")
        """Labels that runs from this clock get."""

    @abc.abstractmethod
    def events(self, after: datetime) -> Iterator[ClockEvent]:
        """Yield this clock's events strictly after `after`, in time order."""

    def _lower_bound(self, after: datetime) -> DateTime:
        """Return the instant events must follow: `after`, or just before start_date."""
        start = inputs.instant(after, where=f"{type(self).__name__}.events after")
        if self.start_date is not None:
            start = max(start, self.start_date - ONE_MICROSECOND)
        return start

    def _is_past_end(self, when: datetime) -> bool:
        """Return whether `when` is after this clock's end_date."""
        return self.end_date is not None and when > self.end_date

    def _event(self, start_time: datetime, zone: Zone) -> ClockEvent:
        """Return an event at `start_time` carrying this clock's parameters and labels."""
        at = utc(start_time)
        # Built directly: pendulum.instance() costs most of a schedule's scan.
        return ClockEvent(
            DateTime(*at.timetuple()[:6], at.microsecond, tzinfo=pendulum.UTC),
            dict(self.parameter_defaults),
            list(self.labels),
            zone,
        )


class IntervalClock(Clock):
    """Fire every `interval` of elapsed time, counted from `start_date`.

    The interval is fixed elapsed time in UTC, so across a DST change the local
    wall-clock time of the runs shifts by the change (Prefect 1 kept local time for
    intervals of a day or more; see docs/schedules.md).
    """

    def __init__(
        self,
        interval: timedelta,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Check the interval and the shared settings.

        Args:
            interval: a positive timedelta of at most 100 years (a number is seconds).
            start_date: the first run and the anchor of the others; default
                2019-01-01 00:00 UTC, as in Prefect 1. Filters read events in its zone.
            end_date: no event after this instant.
            parameter_defaults: parameter values that runs from this clock get.
            labels: labels that runs from this clock get.
        """
        self.interval = inputs.span(interval, where="IntervalClock interval")
        """The elapsed time between two events."""
        super().__init__(
            start_date if start_date is not None else PREFECT_EPOCH,
            end_date,
            parameter_defaults,
            labels,
        )
        self._anchor = utc(self.anchor)
        self._step = self.interval // ONE_MICROSECOND
        self.timezone = inputs.zone_of(self.anchor)
        """The start_date's zone, where filters read the events."""

    @property
    def anchor(self) -> DateTime:
        """The instant events are counted from (the start_date)."""
        assert self.start_date is not None  # always set by __init__
        return self.start_date

    def __repr__(self) -> str:
        return f"IntervalClock({self.interval!r}, start_date={self.anchor})"

    def events(self, after: datetime) -> Iterator[ClockEvent]:
        """Yield events at anchor + k * interval strictly after `after`."""
        elapsed = (utc(self._lower_bound(after)) - self._anchor) // ONE_MICROSECOND
        # Integer microseconds: no float rounding, however far from the anchor.
        count = max(0, elapsed // self._step + 1)
        while True:
            when = self._anchor + timedelta(microseconds=count * self._step)
            if self._is_past_end(when):
                return
            yield self._event(when, self.timezone)
            count += 1


class CronClock(Clock):
    """Fire when a cron expression matches the wall-clock time in the clock's zone.

    The zone is `timezone` if given, else start_date's zone, else UTC. Across DST
    changes it follows durable's policy (module `durable.schedules.cron`).
    """

    def __init__(
        self,
        cron: str,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: Iterable[str] | None = None,
        day_or: bool = True,
        *,
        timezone: str | None = None,
    ) -> None:
        """Parse the expression and zone, refusing bad ones now rather than at run time.

        Args:
            cron: five fields 'minute hour day-of-month month day-of-week', or a macro
                such as '@daily'.
            start_date: no event before this instant; its zone is the clock's zone
                unless `timezone` is given.
            end_date: no event after this instant.
            parameter_defaults: parameter values that runs from this clock get.
            labels: labels that runs from this clock get.
            day_or: when both day fields are restricted, fire on days matching either
                (True) or both (False).
            timezone: an IANA zone name to read the cron fields in (not in Prefect 1).
        """
        if not isinstance(day_or, bool):
            raise ConfigurationError(
                f"CronClock day_or must be True or False, not {day_or!r}"
            )
        self.cron = CronExpression(cron, day_or=day_or, where="CronClock cron")
        """The parsed cron expression."""
        super().__init__(start_date, end_date, parameter_defaults, labels)
        if timezone is not None:
            self.timezone = inputs.zone(timezone, where="CronClock timezone")
        elif self.start_date is not None:
            self.timezone = inputs.zone_of(self.start_date)
        else:
            self.timezone = pendulum.UTC
        """The zone the cron fields are read in."""
        self.day_or = day_or
        """Whether restricted day-of-month and day-of-week fields combine with OR."""

    def __repr__(self) -> str:
        return f"CronClock({self.cron.text!r}, timezone={self.timezone.name!r})"

    def events(self, after: datetime) -> Iterator[ClockEvent]:
        """Yield events when the expression fires, strictly after `after`."""
        for fire in self.cron.fire_times(self.timezone, self._lower_bound(after)):
            if self._is_past_end(fire):
                return
            yield self._event(fire, self.timezone)


class DatesClock(Clock):
    """Fire at each of a fixed list of dates."""

    def __init__(
        self,
        dates: Iterable[datetime],
        parameter_defaults: dict[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Check the dates: at least one, each a datetime (a naive one is UTC).

        Args:
            dates: the instants to fire at, in any order; duplicates fire once.
            parameter_defaults: parameter values that runs from this clock get.
            labels: labels that runs from this clock get.
        """
        if isinstance(dates, datetime) or not isinstance(dates, Iterable):
            raise ConfigurationError(
                f"DatesClock dates must be a list of datetimes, not {dates!r}; "
                f"write e.g. [{inputs.EXAMPLE_DATETIME}]"
            )
        unique: dict[datetime, DateTime] = {}
        for value in dates:
            when = inputs.instant(value, where="DatesClock dates item")
            unique.setdefault(utc(when), when)
        if not unique:
            raise ConfigurationError(
                "DatesClock dates is empty; write at least one datetime, "
                f"e.g. [{inputs.EXAMPLE_DATETIME}]"
            )
        self.dates = [unique[key] for key in sorted(unique)]
        """The dates, in time order."""
        super().__init__(self.dates[0], self.dates[-1], parameter_defaults, labels)

    def __repr__(self) -> str:
        return f"DatesClock({[str(when) for when in self.dates]!r})"

    def events(self, after: datetime) -> Iterator[ClockEvent]:
        """Yield an event for each date strictly after `after`."""
        start = self._lower_bound(after)
        for when in self.dates:
            if when > start:
                yield self._event(when, inputs.zone_of(when))


class RRuleClock(Clock):
    """Fire at the occurrences of a dateutil `rrule` (or `rruleset`).

    The rule's times are wall-clock times in its dtstart's zone (UTC if naive) and follow
    the fixed-time DST rule: a time a gap swallowed fires at the gap's end, a time shown
    twice fires at its first occurrence.
    """

    def __init__(
        self,
        rrule_obj: Any,
        start_date: datetime | None = None,
        end_date: datetime | None = None,
        parameter_defaults: dict[str, Any] | None = None,
        labels: Iterable[str] | None = None,
    ) -> None:
        """Check the rule: a dateutil rrule or rruleset with at least one occurrence.

        Args:
            rrule_obj: e.g. `rrule.rrule(rrule.DAILY, dtstart=..., byhour=9)`.
            start_date: no event before this instant.
            end_date: no event after this instant.
            parameter_defaults: parameter values that runs from this clock get.
            labels: labels that runs from this clock get.
        """
        if not isinstance(rrule_obj, rrule.rrulebase):
            raise ConfigurationError(
                f"RRuleClock rrule_obj must be a dateutil rrule, not {rrule_obj!r}; "
                "write e.g. rrule.rrule(rrule.DAILY, dtstart=datetime(2026, 1, 1))"
            )
        first = next(iter(rrule_obj), None)
        if first is None:
            raise ConfigurationError(
                f"RRuleClock rrule_obj {rrule_obj!r} has no occurrences; "
                "check its count, until and by* arguments"
            )
        super().__init__(start_date, end_date, parameter_defaults, labels)
        self.rrule_obj = rrule_obj
        """The dateutil rule."""
        self._naive = first.tzinfo is None
        self.timezone: Zone = (
            pendulum.UTC if self._naive else inputs.zone_of(pendulum.instance(first))
        )
        """The zone the rule's wall-clock times are read in."""

    def __repr__(self) -> str:
        return f"RRuleClock({self.rrule_obj!r}, timezone={self.timezone.name!r})"

    def events(self, after: datetime) -> Iterator[ClockEvent]:
        """Yield an event for each occurrence strictly after `after`."""
        last = utc(self._lower_bound(after))
        # dateutil compares naive rules with naive datetimes only.
        bound = last.replace(tzinfo=None) if self._naive else last
        for occurrence in self.rrule_obj.xafter(bound, inc=False):
            fire = self._resolve(occurrence)
            if self._is_past_end(fire):
                return
            if fire > last:  # a gap can map several occurrences to one instant
                last = fire
                yield self._event(fire, self.timezone)

    def _resolve(self, occurrence: datetime) -> datetime:
        """Return the instant an occurrence's wall-clock time names, under the DST rule."""
        # The rule's own wall time, even one a gap swallowed: converting it would shift it.
        wall = occurrence.replace(tzinfo=None)
        if self._naive:
            return wall.replace(tzinfo=UTC)
        return resolve(wall, self.timezone)
