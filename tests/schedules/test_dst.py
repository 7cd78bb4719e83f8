"""DST vectors (RELIABILITY C5): expectations are the table's, written out in UTC."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pendulum
import pytest
from cronsim import CronSim

from durable.schedules import ClockEvent, CronClock, IntervalClock, next_fire_times

# id, zone, cron, start (local wall time), expected fires (UTC, in order, nothing between)
CRON_VECTORS = [
    ("V1", "Europe/Berlin", "30 2 * * *", "2026-03-28 12:00",
     ["2026-03-29 01:00", "2026-03-30 00:30", "2026-03-31 00:30"]),
    ("V2", "Europe/Berlin", "0 * * * *", "2026-03-29 00:30",
     ["2026-03-29 00:00", "2026-03-29 01:00", "2026-03-29 02:00"]),
    ("V3", "Europe/Berlin", "*/30 * * * *", "2026-03-29 01:00",
     ["2026-03-29 00:30", "2026-03-29 01:00", "2026-03-29 01:30"]),
    ("V4", "Europe/Berlin", "30 2 * * *", "2026-10-24 12:00",
     ["2026-10-25 00:30", "2026-10-26 01:30", "2026-10-27 01:30"]),
    ("V5", "Europe/Berlin", "0 * * * *", "2026-10-25 00:30",
     ["2026-10-24 23:00", "2026-10-25 00:00", "2026-10-25 01:00", "2026-10-25 02:00"]),
    ("V6", "America/New_York", "30 2 * * *", "2026-03-07 12:00",
     ["2026-03-08 07:00", "2026-03-09 06:30", "2026-03-10 06:30"]),
    ("V7", "America/New_York", "0 * * * *", "2026-03-08 00:30",
     ["2026-03-08 06:00", "2026-03-08 07:00", "2026-03-08 08:00"]),
    ("V8", "America/New_York", "30 1 * * *", "2026-10-31 12:00",
     ["2026-11-01 05:30", "2026-11-02 06:30", "2026-11-03 06:30"]),
    ("V9", "America/New_York", "0 * * * *", "2026-11-01 00:30",
     ["2026-11-01 05:00", "2026-11-01 06:00", "2026-11-01 07:00"]),
    ("V11-V1", "Europe/Berlin", "30 2 * * *", "2027-03-27 12:00",
     ["2027-03-28 01:00", "2027-03-29 00:30"]),
    ("V11-V4", "Europe/Berlin", "30 2 * * *", "2027-10-30 12:00",
     ["2027-10-31 00:30", "2027-11-01 01:30"]),
    ("V11-V6", "America/New_York", "30 2 * * *", "2027-03-13 12:00",
     ["2027-03-14 07:00", "2027-03-15 06:30"]),
    ("V11-V8", "America/New_York", "30 1 * * *", "2027-11-06 12:00",
     ["2027-11-07 05:30", "2027-11-08 06:30"]),
    ("V11-V5", "Europe/Berlin", "0 * * * *", "2027-10-31 01:30",
     ["2027-10-31 00:00", "2027-10-31 01:00", "2027-10-31 02:00"]),
    ("V11-V7", "America/New_York", "0 * * * *", "2027-03-14 00:30",
     ["2027-03-14 06:00", "2027-03-14 07:00", "2027-03-14 08:00"]),
    # Lord Howe: 30-minute shifts. 2026-10-04 02:00+10:30 -> 02:30+11 (15:30Z);
    # 2026-04-05 02:00+11 -> 01:30+10:30 (15:00Z), so 01:30-01:59 happen twice.
    ("LH-gap-fixed", "Australia/Lord_Howe", "15 2 * * *", "2026-10-03 12:00",
     ["2026-10-03 15:30", "2026-10-04 15:15"]),
    ("LH-gap-wall", "Australia/Lord_Howe", "*/15 * * * *", "2026-10-04 01:30",
     ["2026-10-03 15:15", "2026-10-03 15:30", "2026-10-03 15:45"]),
    ("LH-after-gap", "Australia/Lord_Howe", "*/10 3 * * *", "2026-10-04 02:40",
     ["2026-10-03 16:00", "2026-10-03 16:10", "2026-10-03 16:20"]),
    ("LH-overlap-fixed", "Australia/Lord_Howe", "45 1 * * *", "2026-04-04 12:00",
     ["2026-04-04 14:45", "2026-04-05 15:15"]),
    ("LH-overlap-wall", "Australia/Lord_Howe", "*/15 * * * *", "2026-04-05 01:20",
     ["2026-04-04 14:30", "2026-04-04 14:45", "2026-04-04 15:00", "2026-04-04 15:15",
      "2026-04-04 15:30"]),
    # Santiago: DST at midnight. 2026-09-06 00:00-04 -> 01:00-03 (04:00Z): midnight
    # does not exist; 2026-04-05 00:00-03 -> 04-04 23:00-04 (03:00Z): 23:xx twice.
    ("SCL-midnight-gap", "America/Santiago", "0 0 * * *", "2026-09-05 12:00",
     ["2026-09-06 04:00", "2026-09-07 03:00"]),
    ("SCL-hour-0-gone", "America/Santiago", "* 0 * * *", "2026-09-05 23:58",
     ["2026-09-07 03:00", "2026-09-07 03:01"]),
    ("SCL-gap-wall", "America/Santiago", "*/30 * * * *", "2026-09-05 23:00",
     ["2026-09-06 03:30", "2026-09-06 04:00", "2026-09-06 04:30"]),
    ("SCL-overlap-fixed", "America/Santiago", "30 23 * * *", "2026-04-04 12:00",
     ["2026-04-05 02:30", "2026-04-06 03:30"]),
    ("SCL-midnight-after-fallback", "America/Santiago", "0 0 * * *", "2026-04-04 12:00",
     ["2026-04-05 04:00", "2026-04-06 04:00"]),
    ("SCL-overlap-wall", "America/Santiago", "0 * * * *", "2026-04-04 22:30",
     ["2026-04-05 02:00", "2026-04-05 03:00", "2026-04-05 04:00"]),
]  # fmt: skip

VECTOR_PARAMS = [pytest.param(*row[1:], id=row[0]) for row in CRON_VECTORS]


def local(text: str, zone: str) -> pendulum.DateTime:
    return pendulum.parse(text, tz=zone)  # type: ignore[return-value]


def utc(text: str) -> pendulum.DateTime:
    return pendulum.parse(text, tz="UTC")  # type: ignore[return-value]


@pytest.mark.parametrize(("zone", "cron", "start", "expected"), VECTOR_PARAMS)
def test_cron_clock_fires_exactly_the_vector(zone, cron, start, expected):
    clock = CronClock(cron, timezone=zone)
    events = clock.events(after=local(start, zone))
    fires = [next(events).start_time for _ in expected]
    assert fires == [utc(text) for text in expected]
    assert all(fire.timezone_name == "UTC" for fire in fires)


@pytest.mark.parametrize(("zone", "cron", "start", "expected"), VECTOR_PARAMS)
def test_next_fire_times_matches_the_vector(zone, cron, start, expected):
    fires = next_fire_times(cron, zone, local(start, zone), len(expected))
    assert [fire.to_iso8601_string() for fire in fires] == [
        utc(text).to_iso8601_string() for text in expected
    ]


@pytest.mark.parametrize(("zone", "cron", "start", "expected"), VECTOR_PARAMS)
def test_restarting_at_any_minute_gives_the_same_sequence(zone, cron, start, expected):
    """What a worker sees: asking again after any instant continues the sequence."""
    clock = CronClock(cron, timezone=zone)
    sequence = [utc(text) for text in expected]
    after = local(start, zone).in_tz("UTC")
    while after < sequence[-2]:
        following = next(fire for fire in sequence if fire > after)
        assert next(clock.events(after)).start_time == following, after
        # Every minute in the 90 minutes before each fire; coarser steps elsewhere.
        close = following - after <= timedelta(minutes=90)
        after = after.add(minutes=1 if close else 17)


def test_zone_comes_from_start_date_as_in_prefect():
    start = pendulum.datetime(2026, 3, 28, 12, tz="Europe/Berlin")
    clock = CronClock("30 2 * * *", start_date=start)
    assert [e.start_time for e in _take(clock.events(start), 2)] == [
        utc("2026-03-29 01:00"),
        utc("2026-03-30 00:30"),
    ]


@pytest.mark.parametrize(
    ("anchor", "expected", "local_hour"),
    [
        pytest.param(
            "2026-10-24 09:00", ["2026-10-25 07:00", "2026-10-26 07:00"], 8, id="V10"
        ),
        pytest.param(
            "2026-03-28 09:00",
            ["2026-03-29 08:00", "2026-03-30 08:00"],
            10,
            id="V10-spring-forward",
        ),
    ],
)
def test_interval_is_elapsed_utc_time_across_dst(anchor, expected, local_hour):
    start = local(anchor, "Europe/Berlin")
    clock = IntervalClock(timedelta(hours=24), start_date=start)
    events = _take(clock.events(start), 2)
    assert [e.start_time for e in events] == [utc(text) for text in expected]
    # Local time drifts by the DST change: documented, as RELIABILITY V10 requires.
    assert {e.local_start_time.hour for e in events} == {local_hour}


# Wall-clock expressions with * day fields: matched by minute and hour alone.
BRUTE_FORCE_CRONS = ["0 * * * *", "*/30 * * * *", "45 * * * *", "*/10 3 * * *",
                     "* 0 * * *", "0 */2 * * *", "30 2 * * *", "0 0 * * *",
                     "30 23 * * *", "15 1,2 * * *"]  # fmt: skip
TRANSITIONS = [
    ("Europe/Berlin", "2026-03-29 01:00"),
    ("Europe/Berlin", "2026-10-25 01:00"),
    ("America/New_York", "2026-03-08 07:00"),
    ("America/New_York", "2026-11-01 06:00"),
    ("Australia/Lord_Howe", "2026-10-03 15:30"),
    ("Australia/Lord_Howe", "2026-04-04 15:00"),
    ("America/Santiago", "2026-09-06 04:00"),
    ("America/Santiago", "2026-04-05 03:00"),
]


@pytest.mark.parametrize(("zone", "transition"), TRANSITIONS)
@pytest.mark.parametrize("cron", BRUTE_FORCE_CRONS)
def test_policy_agrees_with_a_minute_by_minute_scan(zone, transition, cron):
    """Scan every real minute of the 8 hours around a transition and apply the policy
    by hand: wall-clock entries fire at each matching minute; fixed-time entries fire at
    the first real minute whose wall time reaches each matching wall time."""
    sim = CronSim(cron, datetime(2026, 1, 1))  # noqa: DTZ001 (only its parsed fields)
    minute, hour = cron.split()[:2]
    fixed = not (minute.startswith("*") or hour.startswith("*"))
    # Plain datetimes: pendulum's arithmetic would dominate the test's time.
    start = datetime.fromisoformat(transition).replace(tzinfo=UTC) - timedelta(hours=4)
    tz = ZoneInfo(zone)
    instants = [start + timedelta(minutes=m) for m in range(1, 8 * 60 + 1)]
    walls = [i.astimezone(tz).replace(tzinfo=None) for i in instants]
    if fixed:
        targets = sorted(
            w
            for w in set(walls) | _gap_walls(walls)
            if w.minute in sim.minutes and w.hour in sim.hours
        )
        expected = {
            next(i for i, w in zip(instants, walls, strict=True) if w >= target)
            for target in targets
        }
    else:
        expected = {
            i for i, w in zip(instants, walls, strict=True)
            if w.minute in sim.minutes and w.hour in sim.hours
        }  # fmt: skip
    clock = CronClock(cron, timezone=zone)
    fires = set()
    for event in clock.events(start):
        if event.start_time > instants[-1]:
            break
        fires.add(event.start_time)
    assert fires == expected


def _gap_walls(walls: Sequence[datetime]) -> set[datetime]:
    """Return the wall minutes the clocks jumped over between consecutive minutes."""
    skipped = set()
    for before, after in itertools.pairwise(walls):
        moment = before + timedelta(minutes=1)
        while moment < after:
            skipped.add(moment)
            moment += timedelta(minutes=1)
    return skipped


def _take(iterator: Iterator[ClockEvent], n: int) -> list[ClockEvent]:
    return [next(iterator) for _ in range(n)]


def test_transition_instants_are_the_ones_the_table_assumes():
    """Guards the expectations above against a zone database with other rules."""
    for zone, transition in TRANSITIONS:
        moment = utc(transition)
        before = (moment - timedelta(seconds=1)).astimezone(UTC)
        assert (
            pendulum.instance(before).in_tz(zone).utcoffset()
            != moment.in_tz(zone).utcoffset()
        ), (zone, transition)
