"""Check what users pass to clocks, filters and schedules.

Each helper turns a value into the form schedules compute with, or raises a
`ConfigurationError` that names the argument (`where`) and says what to write instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import pendulum
from pendulum import DateTime, Duration
from pendulum.tz.timezone import FixedTimezone, Timezone

from durable.errors import ConfigurationError

Zone = Timezone | FixedTimezone
"""A pendulum time zone: an IANA zone (with DST rules) or a fixed UTC offset."""

MAX_SPAN = timedelta(days=36525)
"""The longest interval accepted: 100 years."""

EXAMPLE_DATETIME = "pendulum.datetime(2026, 1, 1, 9, 0, tz='Europe/Berlin')"


def instant(value: object, *, where: str) -> DateTime:
    """Return `value` as an aware pendulum DateTime.

    A naive datetime is read as UTC, as Prefect 1 did (`pendulum.instance`).
    """
    if not isinstance(value, datetime):
        raise ConfigurationError(
            f"{where} must be a datetime, not {value!r}; write e.g. {EXAMPLE_DATETIME}"
        )
    return pendulum.instance(value)


def optional_instant(value: object, *, where: str) -> DateTime | None:
    """Return `value` as an aware pendulum DateTime, or None when it is None."""
    return None if value is None else instant(value, where=where)


def zone_of(value: DateTime) -> Zone:
    """Return the time zone of an aware pendulum DateTime (UTC if it has none)."""
    zone = value.timezone
    return zone if zone is not None else pendulum.UTC


def zone(name: object, *, where: str) -> Zone:
    """Return the IANA time zone called `name`."""
    hint = "write an IANA name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
    if not isinstance(name, str) or not name or name != name.strip():
        raise ConfigurationError(
            f"{where} must be a time zone name, not {name!r}; {hint}"
        )
    try:
        return pendulum.timezone(name)
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigurationError(
            f"{where} {name!r} is not a known time zone; {hint}"
        ) from exc


def span(value: object, *, where: str) -> timedelta:
    """Return `value` as a positive fixed span of at most 100 years.

    A number is read as seconds. Calendar months and years (a pendulum Duration with
    months or years) are not a fixed span and are refused.
    """
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise ConfigurationError(
            f"{where} must be a timedelta, not {value!r}; write e.g. timedelta(minutes=5)"
        )
    if isinstance(value, int | float):
        value = _seconds(value, where=where)
    if isinstance(value, Duration) and (value.years or value.months):
        raise ConfigurationError(
            f"{where} {value!r} counts calendar months or years, which are not a fixed "
            "span; use CronClock (e.g. '0 0 1 * *' monthly) or RRuleClock instead"
        )
    if value <= timedelta(0):
        raise ConfigurationError(
            f"{where} must be positive, not {value!r}; write e.g. timedelta(minutes=5)"
        )
    if value > MAX_SPAN:
        raise ConfigurationError(
            f"{where} {value!r} is longer than 100 years; write a shorter timedelta"
        )
    return timedelta(value.days, value.seconds, value.microseconds)


def _seconds(value: float, *, where: str) -> timedelta:
    """Turn a finite number of seconds into a timedelta."""
    if not math.isfinite(value):
        raise ConfigurationError(
            f"{where} is {value!r}; write a finite number of seconds "
            "or a timedelta such as timedelta(minutes=5)"
        )
    try:
        return timedelta(seconds=value)
    except OverflowError as exc:
        raise ConfigurationError(
            f"{where} {value!r} seconds is longer than 100 years; "
            "write a shorter timedelta"
        ) from exc


def parameter_defaults(value: object, *, where: str) -> dict[str, Any]:
    """Return a copy of a mapping of parameter names to default values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise ConfigurationError(
            f"{where} must map parameter names to values, not {value!r}; "
            "write e.g. {'city': 'Berlin'}"
        )
    return dict(value)


def labels(value: object, *, where: str) -> list[str]:
    """Return a list of label strings."""
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{where} must be a list of strings, not {value!r}; write e.g. ['nightly']"
        )
    found = list(value)
    if not all(isinstance(label, str) for label in found):
        raise ConfigurationError(
            f"{where} must be a list of strings, not {value!r}; write e.g. ['nightly']"
        )
    return found


def whole_number(value: object, *, where: str, low: int, high: int) -> int:
    """Return `value` if it is an int in [low, high]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not low <= value <= high
    ):
        raise ConfigurationError(
            f"{where} must be a whole number from {low} to {high}, not {value!r}"
        )
    return value
