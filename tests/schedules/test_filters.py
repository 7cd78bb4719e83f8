"""Filters: each keeps exactly the local times it names."""

from __future__ import annotations

import pickle
from datetime import datetime, time

import pendulum
import pytest

from durable.errors import ConfigurationError
from durable.schedules import filters


def at(text: str, tz: str = "UTC") -> pendulum.DateTime:
    return pendulum.parse(text, tz=tz)  # type: ignore[return-value]


NOON = at("2026-06-10 12:00")  # a Wednesday


@pytest.mark.parametrize(
    ("check", "when", "kept"),
    [
        (filters.on_datetime(NOON), NOON, True),
        (filters.on_datetime(NOON), NOON.in_tz("Asia/Tokyo"), True),
        (filters.on_datetime(datetime(2026, 6, 10, 12)), NOON, True),  # noqa: DTZ001
        (filters.on_datetime(NOON), NOON.add(seconds=1), False),
        # The repeated hour: equal instants in UTC even though PEP 495 says `!=`.
        (
            filters.on_datetime(at("2026-10-25 00:30")),
            at("2026-10-25 00:30").in_tz("Europe/Berlin"),
            True,
        ),
        (filters.on_date(6, 10), NOON, True),
        (filters.on_date(6, 11), NOON, False),
        (filters.on_date(2, 29), at("2028-02-29 08:00"), True),
        (filters.at_time(time(12)), NOON, True),
        (filters.at_time(pendulum.time(12)), NOON, True),
        (filters.at_time(time(12)), NOON.add(seconds=1), False),
        (filters.at_time(time(14)), NOON.in_tz("Europe/Berlin"), True),
        (filters.between_datetimes(NOON, NOON.add(hours=1)), NOON, True),
        (filters.between_datetimes(NOON, NOON.add(hours=1)), NOON.add(hours=1), True),
        (filters.between_datetimes(NOON, NOON.add(hours=1)), NOON.add(hours=2), False),
        (filters.between_times(time(9), time(17)), NOON, True),
        (filters.between_times(time(9), time(17)), at("2026-06-10 17:00"), True),
        (filters.between_times(time(9), time(17)), at("2026-06-10 17:01"), False),
        (filters.between_times(time(22), time(2)), at("2026-06-10 23:30"), True),
        (filters.between_times(time(22), time(2)), at("2026-06-10 01:59"), True),
        (filters.between_times(time(22), time(2)), NOON, False),
        (filters.between_dates(6, 1, 6, 30), NOON, True),
        (filters.between_dates(6, 11, 6, 30), NOON, False),
        (filters.between_dates(12, 1, 1, 31), at("2026-12-24 09:00"), True),
        (filters.between_dates(12, 1, 1, 31), at("2026-01-15 09:00"), True),
        (filters.between_dates(12, 1, 1, 31), NOON, False),
        (filters.is_weekday, NOON, True),
        (filters.is_weekday, at("2026-06-13 12:00"), False),
        (filters.is_weekend, at("2026-06-14 12:00"), True),
        (filters.is_weekend, NOON, False),
        (filters.is_month_start, at("2026-06-01 00:00"), True),
        (filters.is_month_start, NOON, False),
        (filters.is_month_end, at("2026-06-30 23:00"), True),
        (filters.is_month_end, at("2028-02-29 23:00"), True),
        (filters.is_month_end, at("2026-02-28 23:00"), True),
        (filters.is_month_end, NOON, False),
        (filters.is_day_of_week(2), NOON, True),
        (filters.is_day_of_week(0), NOON, False),
        (filters.is_day_of_week(6), at("2026-06-14 12:00"), True),
    ],
)
def test_filter_keeps_exactly_what_it_names(check, when, kept):
    assert check(when) is kept


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: filters.on_datetime("2026-01-01"),  # type: ignore[arg-type]
            "on_datetime dt must be a datetime",
        ),
        (
            lambda: filters.on_date(13, 1),
            "on_date month must be a whole number from 1 to 12",
        ),
        (
            lambda: filters.on_date(2, 30),
            "on_date day must be a whole number from 1 to 29",
        ),
        (lambda: filters.on_date(4, 31), "from 1 to 30"),
        (
            lambda: filters.at_time("09:00"),  # type: ignore[arg-type]
            "at_time t must be a time of day",
        ),
        (
            lambda: filters.at_time(time(9, tzinfo=pendulum.UTC)),
            "without a zone.*read in the clock's zone",
        ),
        (
            lambda: filters.between_datetimes(NOON, NOON.subtract(hours=1)),
            "between_datetimes end .* is before start",
        ),
        (
            lambda: filters.between_times(time(9), 17),  # type: ignore[arg-type]
            "between_times end must be a time",
        ),
        (lambda: filters.between_dates(1, 1, 0, 1), "between_dates end month"),
        (lambda: filters.is_day_of_week(7), "0 is Monday.*from 0 to 6"),
        (lambda: filters.is_day_of_week(True), "from 0 to 6, not True"),
    ],
)
def test_bad_filter_arguments_are_refused(make, message):
    with pytest.raises(ConfigurationError, match=message):
        make()


def test_made_filters_pickle_and_show_how_they_were_made():
    check = filters.between_times(time(22), time(2))
    assert repr(check) == "between_times(datetime.time(22, 0), datetime.time(2, 0))"
    restored = pickle.loads(pickle.dumps(check))
    assert restored == check
    assert restored(at("2026-06-10 23:00")) is True
