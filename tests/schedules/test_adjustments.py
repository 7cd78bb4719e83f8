"""Adjustments: `add` and `next_weekday` move a kept event's local start time."""

from __future__ import annotations

import pickle
from datetime import timedelta

import pendulum
import pytest

from durable.errors import ConfigurationError
from durable.schedules import adjustments


def at(text: str, tz: str = "Europe/Berlin") -> pendulum.DateTime:
    return pendulum.parse(text, tz=tz)  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("interval", "when", "expected"),
    [
        (timedelta(hours=1), at("2026-06-10 09:00"), at("2026-06-10 10:00")),
        (timedelta(minutes=-30), at("2026-06-10 09:00"), at("2026-06-10 08:30")),
        # A timedelta is elapsed time: across the fall-back the wall clock shows 08:00.
        (timedelta(days=1), at("2026-10-24 09:00"), at("2026-10-25 08:00")),
        # A pendulum Duration in days keeps the wall-clock time.
        (pendulum.duration(days=1), at("2026-10-24 09:00"), at("2026-10-25 09:00")),
    ],
)
def test_add_moves_by_the_interval(interval, when, expected):
    assert adjustments.add(interval)(when) == expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        ("2026-06-10 09:00", "2026-06-10 09:00"),  # Wednesday stays
        ("2026-06-12 09:00", "2026-06-12 09:00"),  # Friday stays
        ("2026-06-13 09:00", "2026-06-15 09:00"),  # Saturday -> Monday
        ("2026-06-14 23:30", "2026-06-15 23:30"),  # Sunday -> Monday
        ("2026-03-28 02:30", "2026-03-30 02:30"),  # across the spring-forward weekend
    ],
)
def test_next_weekday_moves_weekends_to_monday(when, expected):
    assert adjustments.next_weekday(at(when)) == at(expected)


def test_add_refuses_a_number():
    with pytest.raises(ConfigurationError, match="add interval must be a timedelta"):
        adjustments.add(60)  # type: ignore[arg-type]


def test_add_pickles_and_shows_its_interval():
    shift = adjustments.add(timedelta(hours=1))
    assert repr(shift) == "add(datetime.timedelta(seconds=3600))"
    assert pickle.loads(pickle.dumps(shift)) == shift
