"""Clocks: events strictly after `after`, between start and end, from checked settings."""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta

import pendulum
import pytest
from dateutil import rrule  # type: ignore[import-untyped]

from durable.errors import ConfigurationError
from durable.schedules import (
    ClockEvent,
    CronClock,
    DatesClock,
    IntervalClock,
    RRuleClock,
)
from durable.schedules.clocks import Clock

T0 = pendulum.datetime(2026, 1, 1, tz="UTC")
NAIVE_T0 = datetime(2026, 1, 1)  # noqa: DTZ001 (rules and dates read as UTC)


def starts(clock: Clock, after: datetime, n: int) -> list[pendulum.DateTime]:
    events = clock.events(after)
    return [next(events).start_time for _ in range(n)]


def minutes(*values: int) -> list[pendulum.DateTime]:
    return [T0.add(minutes=v) for v in values]


class TestIntervalClock:
    @pytest.mark.parametrize(
        ("interval", "after", "expected"),
        [
            (timedelta(minutes=5), T0.subtract(days=1), minutes(0, 5, 10)),
            (timedelta(minutes=5), T0, minutes(5, 10, 15)),
            (timedelta(minutes=5), T0.add(seconds=1), minutes(5, 10, 15)),
            (timedelta(minutes=5), T0.add(minutes=5), minutes(10, 15, 20)),
            (300, T0.add(minutes=4, seconds=59), minutes(5, 10, 15)),
            (
                90.5,
                T0,
                [T0.add(seconds=90.5), T0.add(seconds=181), T0.add(seconds=271.5)],
            ),
            (pendulum.duration(hours=1), T0, minutes(60, 120, 180)),
            (
                timedelta(microseconds=1),
                T0,
                [T0.add(microseconds=m) for m in (1, 2, 3)],
            ),
        ],
    )
    def test_fires_every_interval_from_the_start_date(self, interval, after, expected):
        assert starts(IntervalClock(interval, start_date=T0), after, 3) == expected

    def test_far_from_the_anchor_stays_on_the_grid(self):
        clock = IntervalClock(timedelta(seconds=7), start_date=T0)
        after = T0.add(years=80, seconds=3)
        (fire,) = starts(clock, after, 1)
        assert (fire - T0).total_seconds() % 7 == 0
        assert timedelta(0) < fire - after <= timedelta(seconds=7)

    def test_default_start_is_prefects_2019_epoch(self):
        clock = IntervalClock(timedelta(days=1))
        assert starts(clock, T0, 1) == [T0.add(days=1)]
        assert clock.start_date == pendulum.datetime(2019, 1, 1)

    def test_end_date_is_the_last_possible_event(self):
        clock = IntervalClock(timedelta(minutes=5), T0, end_date=T0.add(minutes=10))
        assert [e.start_time for e in clock.events(T0.subtract(days=1))] == minutes(
            0, 5, 10
        )

    def test_naive_start_date_is_utc_and_events_carry_its_zone(self):
        naive = IntervalClock(timedelta(hours=1), datetime(2026, 1, 1))  # noqa: DTZ001
        assert naive.start_date == T0
        berlin = pendulum.datetime(2026, 1, 1, 9, tz="Europe/Berlin")
        event = next(IntervalClock(timedelta(hours=1), berlin).events(berlin))
        assert event.start_time.timezone_name == "UTC"
        assert event.local_start_time.isoformat() == "2026-01-01T10:00:00+01:00"

    @pytest.mark.parametrize(
        ("interval", "message"),
        [
            (timedelta(0), "must be positive"),
            (timedelta(seconds=-1), "must be positive"),
            (0, "must be positive"),
            (-5, "must be positive"),
            (1e-9, "must be positive"),
            (float("nan"), "is nan; write a finite number of seconds"),
            (float("inf"), "is inf"),
            (timedelta(days=36526), "longer than 100 years"),
            (1e20, "longer than 100 years"),
            (pendulum.duration(months=1), "calendar months or years"),
            ("5m", "must be a timedelta"),
            (True, "must be a timedelta"),
            (None, "must be a timedelta"),
        ],
    )
    def test_bad_intervals_are_refused(self, interval, message):
        with pytest.raises(
            ConfigurationError, match=f"IntervalClock interval.*{message}"
        ):
            IntervalClock(interval)


class TestCronClock:
    def test_start_date_on_a_match_fires_and_end_date_is_included(self):
        clock = CronClock("0 * * * *", start_date=T0, end_date=T0.add(hours=2))
        fires = [e.start_time for e in clock.events(T0.subtract(days=1))]
        assert fires == minutes(0, 60, 120)

    def test_timezone_overrides_the_start_dates_zone(self):
        start = pendulum.datetime(2026, 1, 1, tz="Asia/Tokyo")
        clock = CronClock("0 9 * * *", start_date=start, timezone="America/New_York")
        assert starts(clock, start, 1) == [pendulum.datetime(2026, 1, 1, 14)]

    @pytest.mark.parametrize(
        ("timezone", "message"),
        [
            ("Mars/Olympus", "'Mars/Olympus' is not a known time zone"),
            ("UTC+25", r"'UTC\+25' is not a known time zone"),
            ("", "must be a time zone name, not ''"),
            (" Europe/Berlin", "must be a time zone name"),
            ("../../etc/passwd", "'../../etc/passwd' is not a known time zone"),
            (2, "must be a time zone name, not 2"),
        ],
    )
    def test_unknown_zones_are_refused(self, timezone, message):
        with pytest.raises(
            ConfigurationError, match=f"CronClock timezone {message}.*IANA"
        ):
            CronClock("0 9 * * *", timezone=timezone)

    def test_fixed_offset_start_date_has_no_dst(self):
        start = datetime.fromisoformat("2026-03-28T12:00:00+01:00")
        clock = CronClock("30 2 * * *", start_date=start)
        assert starts(clock, start, 2) == [
            pendulum.datetime(2026, 3, 29, 1, 30),
            pendulum.datetime(2026, 3, 30, 1, 30),
        ]


class TestDatesClock:
    def test_fires_at_each_date_once_in_order(self):
        dates = [T0.add(hours=2), T0, datetime(2026, 1, 1, 1), T0.add(hours=2)]  # noqa: DTZ001
        clock = DatesClock(dates)
        fires = [e.start_time for e in clock.events(T0.subtract(seconds=1))]
        assert fires == minutes(0, 60, 120)
        assert [e.start_time for e in clock.events(T0)] == minutes(60, 120)
        assert (clock.start_date, clock.end_date) == (T0, T0.add(hours=2))

    @pytest.mark.parametrize(
        ("dates", "message"),
        [
            ([], "dates is empty"),
            (T0, "must be a list of datetimes"),
            ([date(2026, 1, 1)], "dates item must be a datetime"),
            (["2026-01-01"], "dates item must be a datetime"),
        ],
    )
    def test_bad_dates_are_refused(self, dates, message):
        with pytest.raises(ConfigurationError, match=message):
            DatesClock(dates)


class TestRRuleClock:
    def test_naive_rule_is_read_in_utc(self):
        rule = rrule.rrule(rrule.DAILY, dtstart=datetime(2026, 1, 1, 9), count=3)  # noqa: DTZ001
        clock = RRuleClock(rule)
        fires = [e.start_time for e in clock.events(T0)]
        assert fires == [T0.add(days=d, hours=9) for d in range(3)]

    @pytest.mark.parametrize(
        ("dtstart", "freq", "expected"),
        [
            # 02:30 daily in Berlin: the gap's end on 03-29, then 02:30+02 again.
            (
                "2026-03-28T02:30",
                rrule.DAILY,
                ["03-28 01:30", "03-29 01:00", "03-30 00:30"],
            ),
            # ...and the first of the two 02:30s on 10-25.
            (
                "2026-10-24T02:30",
                rrule.DAILY,
                ["10-24 00:30", "10-25 00:30", "10-26 01:30"],
            ),
            # Hourly wall-clock times: 02:00 is swallowed and 03:00 fires once.
            (
                "2026-03-29T01:00",
                rrule.HOURLY,
                ["03-29 00:00", "03-29 01:00", "03-29 02:00"],
            ),
        ],
    )
    def test_aware_rule_follows_the_fixed_time_dst_rule(self, dtstart, freq, expected):
        berlin = pendulum.timezone("Europe/Berlin")
        start = datetime.fromisoformat(dtstart).replace(tzinfo=berlin)
        clock = RRuleClock(rrule.rrule(freq, dtstart=start))
        fires = starts(clock, start - timedelta(seconds=1), 3)
        assert [f.format("MM-DD HH:mm") for f in fires] == expected
        assert clock.timezone.name == "Europe/Berlin"

    def test_start_and_end_dates_bound_the_rule(self):
        rule = rrule.rrule(rrule.HOURLY, dtstart=datetime(2026, 1, 1))  # noqa: DTZ001
        clock = RRuleClock(rule, start_date=T0.add(hours=2), end_date=T0.add(hours=4))
        assert [e.start_time for e in clock.events(T0)] == minutes(120, 180, 240)

    @pytest.mark.parametrize(
        ("rule", "message"),
        [
            ("FREQ=DAILY", "must be a dateutil rrule"),
            (
                rrule.rrule(rrule.DAILY, dtstart=NAIVE_T0, count=0),
                "no occurrences",
            ),
        ],
    )
    def test_bad_rules_are_refused(self, rule, message):
        with pytest.raises(
            ConfigurationError, match=f"RRuleClock rrule_obj.*{message}"
        ):
            RRuleClock(rule)


CLOCKS = [
    pytest.param(lambda: IntervalClock(timedelta(minutes=7), T0), id="interval"),
    pytest.param(lambda: CronClock("*/7 * * * *", timezone="Europe/Berlin"), id="cron"),
    pytest.param(lambda: DatesClock([T0.add(minutes=m) for m in range(9)]), id="dates"),
    pytest.param(
        lambda: RRuleClock(rrule.rrule(rrule.MINUTELY, interval=7, dtstart=T0)),
        id="rrule",
    ),
]


@pytest.mark.parametrize("make", CLOCKS)
def test_clocks_are_pure_and_survive_pickling(make):
    clock = make()
    after = T0.add(seconds=30)
    first = starts(clock, after, 3)
    assert starts(clock, after, 3) == first
    assert starts(make(), after, 3) == first
    assert starts(pickle.loads(pickle.dumps(clock)), after, 3) == first
    assert all(fire > after for fire in first)


@pytest.mark.parametrize("make", CLOCKS)
def test_naive_after_is_utc(make):
    clock = make()
    naive = datetime(2026, 1, 1, 0, 0, 30)  # noqa: DTZ001
    assert starts(clock, naive, 2) == starts(clock, T0.add(seconds=30), 2)


def test_events_carry_their_clocks_parameters_and_labels_as_copies():
    clock = IntervalClock(
        timedelta(hours=1), T0, parameter_defaults={"x": 1}, labels=["a"]
    )
    first, second = starts_events = [next(clock.events(T0)), next(clock.events(T0))]
    assert first == ClockEvent(T0.add(hours=1), {"x": 1}, ["a"])
    first.parameter_defaults["x"] = 2
    assert second.parameter_defaults == {"x": 1} == clock.parameter_defaults
    assert len(starts_events) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_date": "2026-01-01"}, "start_date must be a datetime"),
        ({"start_date": date(2026, 1, 1)}, "start_date must be a datetime"),
        ({"end_date": 5}, "end_date must be a datetime"),
        ({"start_date": T0, "end_date": T0.subtract(days=1)}, "end_date .* is before"),
        ({"parameter_defaults": ["x"]}, "parameter_defaults must map parameter names"),
        ({"parameter_defaults": {1: "x"}}, "parameter_defaults must map"),
        ({"labels": "nightly"}, "labels must be a list of strings"),
        ({"labels": [1]}, "labels must be a list of strings"),
    ],
)
def test_bad_shared_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigurationError, match=f"CronClock {message}"):
        CronClock("0 * * * *", **kwargs)


def test_after_must_be_a_datetime():
    with pytest.raises(ConfigurationError, match="events after must be a datetime"):
        next(CronClock("0 * * * *").events("2026-01-01"))  # type: ignore[arg-type]
