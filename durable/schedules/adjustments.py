"""Adjustments: functions that move an event's start time once it has passed the
filters, with Prefect 1's names. They receive and return the time in the clock's zone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import pendulum
from pendulum import DateTime

from durable.errors import ConfigurationError
from durable.schedules import filters, inputs
from durable.schedules.zones import resolve

Adjustment = Callable[[DateTime], DateTime]
"""Any callable that takes an event's start time and returns the time to run at."""


@dataclass(frozen=True, slots=True, repr=False)
class Add:
    """The adjustment `add(interval)` returns: picklable, with a readable repr."""

    interval: timedelta

    def __call__(self, dt: DateTime) -> DateTime:
        return pendulum.instance(dt) + self.interval

    def __repr__(self) -> str:
        return f"add({self.interval!r})"


def add(interval: timedelta) -> Adjustment:
    """Move events by `interval`, with pendulum's arithmetic (as Prefect 1).

    A plain timedelta is elapsed time; a pendulum Duration in days keeps the local
    wall-clock time across a DST change: `add(pendulum.duration(days=1))`.
    """
    if not isinstance(interval, timedelta):
        raise ConfigurationError(
            f"add interval must be a timedelta, not {interval!r}; "
            "write e.g. add(timedelta(hours=1))"
        )
    return Add(interval)


def next_weekday(dt: DateTime) -> DateTime:
    """Move a Saturday or Sunday event to the Monday after, at the same local time.

    The Monday's time follows the fixed-time DST rule, so a weekend time that a
    spring-forward swallowed does not drag Monday's run an hour late.
    """
    local = pendulum.instance(dt)
    if filters.is_weekday(local):
        return local
    zone = inputs.zone_of(local)
    monday = local.date() + timedelta(days=7 - local.weekday())
    wall = datetime.combine(monday, local.time())
    return pendulum.instance(resolve(wall, zone)).in_timezone(zone)
