"""Cron expressions: cronsim parses them and finds matching wall-clock times; this module
places those times in real time under durable's DST policy.

The policy matches Debian's cron (docs/schedules.md, RELIABILITY C5):

- *fixed-time* entries (neither the minute nor the hour field starts with `*`, so
  `30 2 * * *`, `0 9-17 * * 1-5`) fire once at the end of a spring-forward gap for a time
  the gap swallowed, and once, at the first occurrence, for a time shown twice in a
  fall-back overlap;
- *wall-clock* entries (`0 * * * *`, `*/30 * * * *`, `0 */2 * * *`) fire at every real
  instant whose local wall-clock time matches: never inside a gap, twice in an overlap.

cronsim is asked only about naive wall-clock times, never about zones, so neither its DST
handling nor any other library's decides when a job runs.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError
from pendulum import DateTime

from durable.errors import ConfigurationError
from durable.schedules import inputs
from durable.schedules.inputs import Zone
from durable.schedules.zones import (
    next_offset_change,
    offset_at,
    resolve,
    utc,
    wall_time,
)

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
"""Vixie cron's shorthands, spelled out as Debian's cron does."""

FIELDS = {
    "minute": "0-59",
    "hour": "0-23",
    "day-of-month": "1-31, L or LW, and a day the chosen months have",
    "month": "1-12 or JAN-DEC",
    "day-of-week": "0-7 or SUN-SAT (0 and 7 are Sunday), optionally with #1-#5 or L",
}
"""The five fields, in order, with the values each accepts."""

FORMAT = (
    "write five fields 'minute hour day-of-month month day-of-week', "
    "e.g. '30 2 * * *' for 02:30 every day"
)

CALENDAR_CYCLE = (
    datetime(2000, 12, 31, 23, 59),  # noqa: DTZ001 (a wall-clock time: no zone)
    datetime(2029, 1, 1),  # noqa: DTZ001 (a wall-clock time: no zone)
)
"""28 years in which every combination of weekday and leap year occurs: an expression
that matches no day here matches no day in 1901-2099."""


class CronExpression:
    """A validated five-field cron expression and the times it fires in a zone."""

    def __init__(self, text: object, *, day_or: bool = True, where: str) -> None:
        """Parse `text` or raise a ConfigurationError naming `where`.

        Args:
            text: five fields, or one of the `@daily`-style macros.
            day_or: when both day-of-month and day-of-week are restricted, fire on days
                matching either (True, cron's rule) or both (False). As in Debian's cron,
                a day field starting with `*` always combines with AND.
            where: the argument's name for error messages, e.g. "CronClock cron".
        """
        if not isinstance(text, str):
            raise ConfigurationError(
                f"{where} must be a string, not {text!r}; {FORMAT}"
            )
        self.text = text
        """The expression as written."""
        self.day_or = day_or
        """Whether restricted day-of-month and day-of-week fields combine with OR."""
        self.fields = _normalize(text, where=where)
        """The five space-separated fields that cronsim parses."""
        minute, hour = self.fields.split()[:2]
        self.is_fixed_time = not (minute.startswith("*") or hour.startswith("*"))
        """Whether the fixed-time DST rule applies (see the module docstring)."""
        self._check(where)

    def __repr__(self) -> str:
        return f"CronExpression({self.text!r}, day_or={self.day_or!r})"

    def walls_after(self, wall: datetime) -> Iterator[datetime]:
        """Yield the naive wall-clock times after `wall` that match, in order.

        cronsim gives up after 50 years without a match, which ends the iteration.
        """
        sim = CronSim(self.fields, wall)
        if not self.day_or:
            sim.day_and = True
        yield from sim

    def fire_times(self, zone: Zone, after: datetime) -> Iterator[datetime]:
        """Yield the instants (aware, UTC) strictly after `after` at which this fires."""
        if self.is_fixed_time:
            return self._fixed_time_fires(zone, utc(after))
        return self._wall_clock_fires(zone, utc(after))

    def _fixed_time_fires(self, zone: Zone, after: datetime) -> Iterator[datetime]:
        """Fire once per matching wall time: its first occurrence, or the gap's end."""
        last = after
        # Wall times only grow, and so do the instants they resolve to; a fall-back can
        # put `after` in the repeated hour, whose first pass is then already behind us.
        for wall in self.walls_after(wall_time(after, zone)):
            fire = resolve(wall, zone)
            if fire > last:  # several wall times in one gap share its end
                last = fire
                yield fire

    def _wall_clock_fires(self, zone: Zone, after: datetime) -> Iterator[datetime]:
        """Fire at every real instant whose wall-clock time matches.

        Between two offset changes, wall time is UTC plus a constant, so cronsim's naive
        answers map to instants exactly. At an offset change the search restarts at the
        wall time the clocks show right after it.
        """
        start, inclusive = after, False
        while True:
            offset, origin = offset_at(start, zone), start
            floor = wall_time(start, zone) - (
                timedelta(seconds=1) if inclusive else timedelta(0)
            )
            change = None
            for wall in self.walls_after(floor):
                fire = (wall - offset).replace(tzinfo=UTC)
                change = next_offset_change(zone, origin, fire)
                if change is not None:
                    break
                yield fire
                origin = fire
            if change is None:
                return
            start, inclusive = change, True

    def _check(self, where: str) -> None:
        """Refuse fields cronsim rejects, and expressions that match no day at all."""
        try:
            first = next(self.walls_after(CALENDAR_CYCLE[0]), None)
        except CronSimError as exc:
            raise ConfigurationError(
                _explain(self.text, self.fields, str(exc), where)
            ) from exc
        if first is None or first >= CALENDAR_CYCLE[1]:
            raise ConfigurationError(
                f"{where} {self.text!r} never fires: no date matches its day-of-month, "
                "month and day-of-week fields together; "
                + (
                    "check them, or pass day_or=True"
                    if not self.day_or
                    else "check them"
                )
            )


def next_fire_times(expr: str, tz: str, after: datetime, n: int) -> list[DateTime]:
    """Return the next `n` fire times of cron `expr` in zone `tz` after `after`, in UTC.

    A pure function for tests and tools: CronClock uses the same computation.
    """
    expression = CronExpression(expr, where="cron")
    zone = inputs.zone(tz, where="time zone")
    start = inputs.instant(after, where="after")
    fires: list[DateTime] = []
    for fire in expression.fire_times(zone, start):
        if len(fires) == n:
            break
        fires.append(inputs.instant(fire, where="fire time"))
    return fires


def _normalize(text: str, *, where: str) -> str:
    """Return the five fields of `text`, macros spelled out, or explain what is wrong."""
    for position, char in enumerate(text):
        if not (char == "\t" or " " <= char <= "~"):
            name = unicodedata.name(char, "a control character")
            raise ConfigurationError(
                f"{where} {text!r} contains U+{ord(char):04X} ({name}) at position "
                f"{position}; write plain ASCII, with spaces between the fields"
            )
    stripped = text.strip(" \t")
    if stripped.startswith("@"):
        macro = stripped.lower()
        if macro in MACROS:
            return MACROS[macro]
        raise ConfigurationError(
            f"{where} {text!r} is not a cron shorthand (known: {', '.join(MACROS)}); "
            "for a fixed interval use IntervalClock(timedelta(minutes=5)) instead"
        )
    fields = stripped.split()
    if len(fields) != len(FIELDS):
        seconds = " (a seconds field is not supported: use IntervalClock)"
        seconds = seconds if len(fields) > len(FIELDS) else ""
        raise ConfigurationError(
            f"{where} {text!r} has {len(fields)} fields, not 5{seconds}; {FORMAT}"
        )
    return " ".join(fields)


def _explain(text: str, fields: str, problem: str, where: str) -> str:
    """Turn cronsim's terse message ("Bad minute") into one that says what to write."""
    name = next((name for name in FIELDS if problem == f"Bad {name}"), None)
    if name is None:
        return f"{where} {text!r} is not a valid cron expression ({problem}); {FORMAT}"
    parts = fields.split()
    if name == "day-of-month" and _is_valid([*parts[:3], "*", *parts[4:]]):
        return (
            f"{where} {text!r} never fires: none of its months has that day of the "
            "month; pick a day every chosen month has, or 'L' for the last day"
        )
    return (
        f"{where} {text!r} has a bad {name} field; it accepts {FIELDS[name]}; {FORMAT}"
    )


def _is_valid(fields: list[str]) -> bool:
    """Return whether cronsim accepts these five fields."""
    try:
        CronSim(" ".join(fields), CALENDAR_CYCLE[0])
    except CronSimError:
        return False
    return True
