"""Local-time arithmetic for schedules: the instants a wall-clock time names, and where
a zone's UTC offset changes.

Everything here is a pure function of its arguments. Instants are aware `datetime`s;
wall-clock times are naive `datetime`s read in a zone.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_SECOND = timedelta(seconds=1)

PROBE = timedelta(hours=6)
"""Step between offset probes. Two offset changes closer together than this would cancel
out unseen; DST changes are months apart, and a probe costs one offset lookup."""


def utc(instant: datetime) -> datetime:
    """Return `instant` as a plain aware datetime in UTC (a pendulum DateTime's
    arithmetic and `replace` differ from the standard library's, which PEP 495 needs)."""
    at = instant.astimezone(UTC)
    return datetime(
        at.year, at.month, at.day, at.hour, at.minute, at.second, at.microsecond, UTC
    )


def wall_time(instant: datetime, zone: tzinfo) -> datetime:
    """Return the naive local wall-clock time of `instant` in `zone`."""
    return utc(instant).astimezone(zone).replace(tzinfo=None)


def offset_at(instant: datetime, zone: tzinfo) -> timedelta:
    """Return the UTC offset in force in `zone` at `instant`."""
    offset = instant.astimezone(zone).utcoffset()
    # An aware datetime's offset is never None; the fallback only satisfies the type.
    return offset if offset is not None else timedelta(0)


def instants_at(wall: datetime, zone: tzinfo) -> list[datetime]:
    """Return the real instants (in UTC) whose wall-clock time in `zone` is `wall`.

    The list is empty for a time in a gap (clocks jumped over it), has two entries for a
    time in an overlap (clocks showed it twice), and one entry otherwise.
    """
    found: list[datetime] = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if wall_time(instant, zone) == wall and instant not in found:
            found.append(instant)
    return sorted(found)


def resolve(wall: datetime, zone: tzinfo) -> datetime:
    """Return the instant (UTC) a fixed-time event at `wall` happens in `zone`.

    The fixed-time DST rule: the first occurrence of a time shown twice, or the end of
    the gap for a time the clocks jumped over.
    """
    found = instants_at(wall, zone)
    return found[0] if found else gap_end(wall, zone)


def gap_end(wall: datetime, zone: tzinfo) -> datetime:
    """Return the first real instant after the gap that swallows the wall time `wall`.

    That is the moment the clocks jumped. PEP 495 reads a time in a gap with the offset
    from before the jump (fold=0) or after it (fold=1); the jump lies between the two.
    """
    early = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    late = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    jump = next_offset_change(zone, min(early, late), max(early, late))
    # Only a wall time that is not in a gap has no jump; it then names `late` exactly.
    return jump if jump is not None else late


def next_offset_change(zone: tzinfo, start: datetime, end: datetime) -> datetime | None:
    """Return the first instant in (start, end] whose UTC offset differs from start's.

    Returns None when the offset holds through `end`. Offsets change on whole seconds,
    so the answer is exact.
    """
    base = offset_at(start, zone)
    low = start
    while low < end:
        high = min(low + PROBE, end)
        if offset_at(high, zone) != base:
            return _first_change(zone, low, high, base)
        low = high
    return None


def _first_change(
    zone: tzinfo, low: datetime, high: datetime, base: timedelta
) -> datetime:
    """Bisect whole seconds for the first instant in (low, high] not at offset `base`."""
    low_s = (low - EPOCH) // ONE_SECOND
    high_s = -((EPOCH - high) // ONE_SECOND)  # ceiling
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if offset_at(EPOCH + middle * ONE_SECOND, zone) == base:
            low_s = middle
        else:
            high_s = middle
    return EPOCH + high_s * ONE_SECOND
