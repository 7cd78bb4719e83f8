"""Schedule: merged clocks, filters, adjustments, bounded scans, and Prefect 1's examples."""

from __future__ import annotations

import logging
import pickle
from datetime import datetime, time, timedelta

import pendulum
import pytest
from dateutil import rrule  # type: ignore[import-untyped]

from durable import timesource
from durable.errors import ConfigurationError
from durable.schedules import (
    ClockEvent,
    CronClock,
    CronSchedule,
    DatesClock,
    IntervalClock,
    IntervalSchedule,
    RRuleSchedule,
    Schedule,
    adjustments,
    clocks,
    filters,
)
from durable.schedules.schedules import MAX_SCAN

T0 = pendulum.datetime(2026, 1, 1, tz="UTC")  # a Thursday


def utc(text: str) -> pendulum.DateTime:
    return pendulum.parse(text, tz="UTC")  # type: ignore[return-value]


class TestPrefectExamples:
    def test_interval_schedule_every_minute(self):
        schedule = IntervalSchedule(start_date=T0, interval=timedelta(minutes=1))
        assert schedule.next(3, after=T0) == [
            T0.add(minutes=1),
            T0.add(minutes=2),
            T0.add(minutes=3),
        ]

    def test_cron_clock_on_weekdays_at_nine(self):
        schedule = Schedule(
            clocks=[clocks.CronClock("0 * * * *", start_date=T0)],
            filters=[filters.is_weekday, filters.at_time(time(9))],
        )
        # Thu 1st, Fri 2nd, then Monday the 5th.
        assert schedule.next(3, after=T0) == [
            utc("2026-01-01 09:00"),
            utc("2026-01-02 09:00"),
            utc("2026-01-05 09:00"),
        ]

    def test_hourly_on_weekdays_at_nine_or_three_except_in_january(self):
        schedule = Schedule(
            clocks=[IntervalClock(timedelta(hours=1), start_date=T0)],
            filters=[filters.is_weekday],
            or_filters=[
                filters.at_time(pendulum.time(9)),
                filters.at_time(pendulum.time(15)),
            ],
            not_filters=[filters.between_dates(1, 1, 1, 31)],
        )
        assert schedule.next(3, after=T0) == [
            utc("2026-02-02 09:00"),
            utc("2026-02-02 15:00"),
            utc("2026-02-03 09:00"),
        ]

    def test_each_clock_brings_its_parameter_defaults(self):
        schedule = Schedule(
            clocks=[
                IntervalClock(
                    timedelta(minutes=1), T0, parameter_defaults={"p": "CLOCK 1"}
                ),
                IntervalClock(
                    timedelta(minutes=1),
                    T0.add(seconds=30),
                    parameter_defaults={"p": "CLOCK 2"},
                    labels=["two"],
                ),
            ]
        )
        events = schedule.next(3, after=T0, return_events=True)
        assert events == [
            ClockEvent(T0.add(seconds=30), {"p": "CLOCK 2"}, ["two"]),
            ClockEvent(T0.add(minutes=1), {"p": "CLOCK 1"}, []),
            ClockEvent(T0.add(seconds=90), {"p": "CLOCK 2"}, ["two"]),
        ]

    def test_factories_build_one_clock(self):
        cron = CronSchedule("0 9 * * *", timezone="Europe/Berlin")
        assert cron.next(1, after=T0) == [utc("2026-01-01 08:00")]
        rule = rrule.rrule(rrule.WEEKLY, dtstart=T0)
        assert RRuleSchedule(rule).next(2, after=T0) == [
            T0.add(weeks=1),
            T0.add(weeks=2),
        ]


class TestMerging:
    def test_identical_events_from_two_clocks_fire_once(self):
        schedule = Schedule(
            clocks=[
                CronClock("*/30 * * * *"),
                IntervalClock(timedelta(hours=1), T0),
            ]
        )
        assert schedule.next(3, after=T0) == [
            T0.add(minutes=30),
            T0.add(minutes=60),
            T0.add(minutes=90),
        ]

    def test_same_time_with_other_parameters_fires_for_each(self):
        schedule = Schedule(
            clocks=[
                CronClock("0 * * * *", parameter_defaults={"city": "Berlin"}),
                CronClock("0 * * * *", parameter_defaults={"city": "Paris"}),
                CronClock("0 * * * *", parameter_defaults={"city": "Berlin"}),
            ]
        )
        events = schedule.next(3, after=T0, return_events=True)
        assert [(e.start_time, e.parameter_defaults["city"]) for e in events] == [
            (T0.add(hours=1), "Berlin"),
            (T0.add(hours=1), "Paris"),
            (T0.add(hours=2), "Berlin"),
        ]

    def test_the_same_instant_in_two_zones_is_one_event(self):
        schedule = Schedule(
            clocks=[
                CronClock("30 2 * * *", timezone="Europe/Berlin"),
                DatesClock([utc("2026-10-25 00:30")]),
            ]
        )
        after = utc("2026-10-24 12:00")
        assert schedule.next(2, after=after) == [
            utc("2026-10-25 00:30"),
            utc("2026-10-26 01:30"),
        ]

    def test_start_and_end_dates_span_the_clocks(self):
        schedule = Schedule(
            clocks=[
                IntervalClock(timedelta(hours=1), T0, end_date=T0.add(days=1)),
                IntervalClock(timedelta(hours=1), T0.add(days=2)),
                CronClock("0 * * * *"),
            ]
        )
        assert schedule.start_date == T0
        assert schedule.end_date == T0.add(days=1)

    def test_a_finite_schedule_runs_out(self):
        schedule = Schedule(clocks=[DatesClock([T0.add(hours=1), T0.add(hours=2)])])
        assert schedule.next(5, after=T0) == [T0.add(hours=1), T0.add(hours=2)]
        assert schedule.next(5, after=T0.add(hours=2)) == []


@pytest.mark.parametrize(
    ("kwargs", "expected_hours"),
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"filters": [filters.between_times(time(2), time(4))]}, [2, 3, 4]),
        (
            {
                "filters": [filters.between_times(time(2), time(5))],
                "not_filters": [filters.at_time(time(3))],
            },
            [2, 4, 5],
        ),
        (
            {"or_filters": [filters.at_time(time(1)), filters.at_time(time(6))]},
            [1, 6],
        ),
        (
            {
                "filters": [filters.between_times(time(2), time(6))],
                "or_filters": [filters.at_time(time(1)), filters.at_time(time(6))],
            },
            [6],
        ),
        ({"adjustments": [adjustments.add(timedelta(minutes=90))]}, [2.5, 3.5]),
    ],
)
def test_filter_kinds_combine_as_in_prefect(kwargs, expected_hours):
    schedule = Schedule(clocks=[IntervalClock(timedelta(hours=1), T0)], **kwargs)
    fires = schedule.next(len(expected_hours), after=T0)
    assert fires == [T0.add(minutes=int(h * 60)) for h in expected_hours]


def test_filters_and_adjustments_see_the_clocks_local_time():
    seen: list[str] = []

    def record(when: pendulum.DateTime) -> bool:
        seen.append(when.isoformat())
        return True

    schedule = Schedule(
        clocks=[CronClock("0 9 * * *", timezone="America/New_York")],
        filters=[record, filters.at_time(time(9))],
    )
    assert schedule.next(1, after=T0) == [utc("2026-01-01 14:00")]
    assert seen == ["2026-01-01T09:00:00-05:00"]


def test_weekend_events_moved_to_monday_fire_once():
    schedule = Schedule(
        clocks=[CronClock("0 9 * * *")], adjustments=[adjustments.next_weekday]
    )
    # Fri 2nd; Sat 3rd and Sun 4th both move to Mon 5th, which is also Monday's own.
    assert schedule.next(3, after=T0.add(days=1)) == [
        utc("2026-01-02 09:00"),
        utc("2026-01-05 09:00"),
        utc("2026-01-06 09:00"),
    ]


def test_filters_that_never_match_stop_after_a_bounded_scan(caplog):
    schedule = Schedule(
        clocks=[IntervalClock(timedelta(minutes=1), T0)],
        filters=[filters.on_date(2, 29)],
    )
    with caplog.at_level(logging.WARNING, logger="durable.schedules.schedules"):
        assert schedule.next(1, after=T0) == []
    assert f"{MAX_SCAN} clock events in a row" in caplog.text


def test_a_rare_match_within_the_bound_is_found():
    schedule = Schedule(
        clocks=[IntervalClock(timedelta(minutes=1), T0)],
        filters=[filters.on_datetime(T0.add(minutes=MAX_SCAN - 1))],
    )
    assert schedule.next(1, after=T0) == [T0.add(minutes=MAX_SCAN - 1)]


SCHEDULES = [
    pytest.param(lambda: IntervalSchedule(T0, timedelta(minutes=13)), id="interval"),
    pytest.param(lambda: CronSchedule("*/13 * * * 1-5", T0), id="cron"),
    pytest.param(
        lambda: Schedule(
            clocks=[
                CronClock("0 9 * * *", timezone="Europe/Berlin"),
                IntervalClock(timedelta(hours=5), T0, labels=["x"]),
            ],
            filters=[filters.is_weekday],
            not_filters=[filters.between_times(time(0), time(3))],
            adjustments=[adjustments.add(timedelta(minutes=1))],
        ),
        id="mixed",
    ),
]


@pytest.mark.parametrize("make", SCHEDULES)
@pytest.mark.parametrize(
    "after", [T0, utc("2026-03-29 00:59:59"), utc("2026-10-25 01:00:00.5")]
)
def test_next_is_pure(make, after):
    schedule = make()
    first = schedule.next(10, after=after, return_events=True)
    assert schedule.next(10, after=after, return_events=True) == first
    assert make().next(10, after=after, return_events=True) == first
    restored = pickle.loads(pickle.dumps(schedule))
    assert restored.next(10, after=after, return_events=True) == first
    assert [e.start_time for e in first] == schedule.next(10, after=after)
    assert all(e.start_time > after for e in first)
    assert all(e.start_time.timezone_name == "UTC" for e in first)


def test_next_without_after_starts_from_now_as_in_prefect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = pendulum.datetime(2030, 5, 1, 12, 0, 30, tz="UTC")
    monkeypatch.setattr(timesource.SYSTEM_TIME, "now", lambda: now)
    schedule = IntervalSchedule(T0, timedelta(minutes=1))
    assert schedule.next(2) == [now.replace(second=0).add(minutes=1),
                                now.replace(second=0).add(minutes=2)]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Schedule(clocks=[]), "at least one clock"),
        (lambda: Schedule(clocks=CronClock("@daily")), "must be a list of clocks"),  # type: ignore[arg-type]
        (lambda: Schedule(clocks=["@daily"]), "only clocks"),  # type: ignore[list-item]
        (
            lambda: Schedule([CronClock("@daily")], filters=filters.is_weekday),  # type: ignore[arg-type]
            "filters must be a list of functions",
        ),
        (
            lambda: Schedule([CronClock("@daily")], not_filters=[time(9)]),  # type: ignore[list-item]
            "not_filters must hold functions",
        ),
        (lambda: IntervalSchedule(start_date=T0), "needs an interval"),
        (lambda: IntervalSchedule(T0, timedelta(0)), "IntervalClock interval"),
        (lambda: CronSchedule("61 * * * *"), "bad minute field"),
        (lambda: CronSchedule("@daily", timezone="Mars/Olympus"), "not a known"),
        (lambda: RRuleSchedule("FREQ=DAILY"), "must be a dateutil rrule"),
    ],
)
def test_bad_schedules_are_refused(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


@pytest.mark.parametrize(
    ("n", "after", "message"),
    [
        (-1, T0, "n must be a whole number"),
        (True, T0, "n must be a whole number"),
        (1, "2026-01-01", "after must be a datetime"),
    ],
)
def test_bad_next_arguments_are_refused(n, after, message):
    schedule = CronSchedule("@daily")
    with pytest.raises(ConfigurationError, match=message):
        schedule.next(n, after=after)


def test_naive_after_is_utc():
    schedule = CronSchedule("0 * * * *")
    naive = datetime(2026, 1, 1, 0, 30)  # noqa: DTZ001
    assert schedule.next(1, after=naive) == [T0.add(hours=1)]
