"""Durations, relative times and clock times as short strings for table cells.

Nothing here reads the clock: the caller passes `now`, so a screen and its tests agree.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo

__all__ = ["DASH", "clock", "duration", "localize", "relative"]

DASH = "—"
_UNITS = [(86400, "d"), (3600, "h"), (60, "m"), (1, "s")]


def duration(seconds: float | None) -> str:
    """Format a span: `0.4s`, `12s`, `4m12s`, `2h03m`, `3d04h` (`—` when unknown).

    Digits are cut, never rounded up, so 59.9 s is `59s` and not `60s`.
    """
    if seconds is None or math.isnan(seconds):
        return DASH
    seconds = max(seconds, 0.0)
    if seconds < 10:
        return f"{math.floor(seconds * 10) / 10:.1f}s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    for (size, unit), (small, small_unit) in pairwise(_UNITS):
        if whole >= size:
            big, rest = divmod(whole, size)
            return f"{big}{unit}{rest // small:02d}{small_unit}"
    raise AssertionError("unreachable: whole >= 60 matches the minute unit")


def _coarse(seconds: float) -> str:
    """Return one unit, rounded down: `12s`, `3m`, `2h`, `4d`."""
    for size, unit in _UNITS:
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return "0s"


def relative(at: float | None, now: float) -> str:
    """Format an instant against `now`: `now`, `12s ago`, `3m ago`, `in 2d`."""
    if at is None or math.isnan(at):
        return DASH
    delta = now - at
    if abs(delta) < 1:
        return "now"
    return f"{_coarse(delta)} ago" if delta > 0 else f"in {_coarse(-delta)}"


@lru_cache(maxsize=32)
def _zone(tz: str) -> ZoneInfo:
    return ZoneInfo(tz)


def localize(at: float, tz: str = "UTC") -> datetime:
    """Return the instant `at` (seconds since the epoch) in `tz`; `local` is the viewer's."""
    utc = datetime.fromtimestamp(at, UTC)
    if tz == "UTC":
        return utc
    return utc.astimezone() if tz == "local" else utc.astimezone(_zone(tz))


def clock(at: float | None, tz: str = "UTC") -> str:
    """Format an instant as a wall-clock time, `09:01:36`, in `tz`."""
    if at is None or math.isnan(at):
        return DASH
    try:
        return localize(at, tz).strftime("%H:%M:%S")
    except (ValueError, OverflowError, OSError):  # outside what datetime can hold
        return DASH
