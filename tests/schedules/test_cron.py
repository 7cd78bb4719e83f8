"""Cron parsing: accepted spellings, refused ones, and the fixed-time classification."""

from __future__ import annotations

import pendulum
import pytest

from durable.errors import ConfigurationError
from durable.schedules import CronClock, next_fire_times
from durable.schedules.cron import CronExpression

AFTER = pendulum.datetime(2026, 1, 1, tz="UTC")  # a Thursday


@pytest.mark.parametrize(
    ("cron", "expected"),
    [
        ("@daily", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        ("@midnight", ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"]),
        ("@HOURLY", ["2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"]),
        ("@weekly", ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
        ("@monthly", ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"]),
        ("@yearly", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        ("@annually", ["2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"]),
        ("0 9 * * MON-FRI", ["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z"]),
        ("0 9 * * mon", ["2026-01-05T09:00:00Z", "2026-01-12T09:00:00Z"]),
        ("0 9 * jan,FEB 7", ["2026-01-04T09:00:00Z", "2026-01-11T09:00:00Z"]),
        (" \t0 9 * * *\t ", ["2026-01-01T09:00:00Z", "2026-01-02T09:00:00Z"]),
        ("0 0 L * *", ["2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"]),
        ("0 0 * * 5L", ["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"]),
        ("0 0 * * MON#1", ["2026-01-05T00:00:00Z", "2026-02-02T00:00:00Z"]),
        ("0 0 29 2 *", ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
        ("0 0 29 2 1", ["2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z"]),
        ("*/20 10-11 1 1 *", ["2026-01-01T10:00:00Z", "2026-01-01T10:20:00Z"]),
        ("0 0 13 * 5", ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"]),
    ],
)
def test_accepted_expressions_fire_when_cron_would(cron, expected):
    fires = next_fire_times(cron, "UTC", AFTER, len(expected))
    assert [fire.to_iso8601_string() for fire in fires] == expected


@pytest.mark.parametrize(
    ("cron", "day_or", "expected"),
    [
        ("0 0 13 * 5", True, ["2026-01-02T00:00:00Z", "2026-01-09T00:00:00Z"]),
        ("0 0 13 * 5", False, ["2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z"]),
        ("0 0 29 2 1", False, ["2044-02-29T00:00:00Z", "2072-02-29T00:00:00Z"]),
        # A day field starting with * always combines with AND (Debian's rule).
        ("0 0 */10 * 5", True, ["2026-01-01T00:00:00Z", "2026-05-01T00:00:00Z"][1:]),
    ],
)
def test_day_or_chooses_how_restricted_day_fields_combine(cron, day_or, expected):
    clock = CronClock(cron, day_or=day_or)
    events = clock.events(AFTER)
    assert [next(events).start_time.to_iso8601_string() for _ in expected] == expected


@pytest.mark.parametrize(
    ("cron", "fixed"),
    [
        ("30 2 * * *", True),
        ("0,30 1,2 * * *", True),
        ("0 9-17 * * 1-5", True),
        ("0 0-23/2 * * *", True),  # Debian: only a leading * makes an entry wall-clock
        ("@daily", True),
        ("0 * * * *", False),
        ("*/30 * * * *", False),
        ("0 */2 * * *", False),
        ("* 3 * * *", False),
        ("@hourly", False),
    ],
)
def test_fixed_time_entries_are_those_without_a_leading_star(cron, fixed):
    assert CronExpression(cron, where="cron").is_fixed_time is fixed


@pytest.mark.parametrize(
    ("cron", "message"),
    [
        ("61 * * * *", "bad minute field; it accepts 0-59"),
        ("5-1 * * * *", "bad minute field"),
        ("*/0 * * * *", "bad minute field"),
        ("0 24 * * *", "bad hour field; it accepts 0-23"),
        ("0 0 0 * *", "bad day-of-month field"),
        ("0 0 * 13 *", "bad month field; it accepts 1-12 or JAN-DEC"),
        ("0 0 * * 8", "bad day-of-week field"),
        ("0 0 * * MON#6", "bad day-of-week field"),
        ("* * *", "has 3 fields, not 5; write five fields"),
        ("", "has 0 fields, not 5"),
        ("   ", "has 0 fields, not 5"),
        ("* * * * * *", r"has 6 fields, not 5 \(a seconds field is not supported"),
        ("0 0 * * * 2026 x", "has 7 fields"),
        ("\u00a0* * * * *", r"U\+00A0 \(NO-BREAK SPACE\) at position 0"),
        ("*\u2003* * * *", r"U\+2003 \(EM SPACE\)"),
        ("0 0 * * *\n0 1 * * *", r"U\+000A \(a control character\)"),
        ("@every -5m", "not a cron shorthand.*use IntervalClock"),
        ("@reboot", "not a cron shorthand"),
        ("0 0 31 2 *", "never fires: none of its months has that day"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("* * */20 * 1L", "never fires: no date matches"),
        (None, "must be a string"),
        (30, "must be a string"),
    ],
)
def test_malformed_expressions_are_refused_at_definition_time(cron, message):
    with pytest.raises(ConfigurationError, match=message) as caught:
        CronClock(cron)
    assert str(caught.value).startswith("CronClock cron")


def test_an_expression_that_matches_only_in_other_years_is_accepted():
    """Feb 29 on a Monday exists (2044): refused only if no date in 28 years matches."""
    clock = CronClock("0 0 29 2 1", day_or=False)
    assert next(clock.events(AFTER)).start_time == pendulum.datetime(2044, 2, 29)


def test_day_or_must_be_a_bool():
    with pytest.raises(ConfigurationError, match="day_or must be True or False"):
        CronClock("0 0 * * *", day_or="yes")  # type: ignore[arg-type]


def test_expression_keeps_its_text_for_display():
    clock = CronClock("@daily", timezone="Europe/Berlin")
    assert repr(clock) == "CronClock('@daily', timezone='Europe/Berlin')"
    assert clock.cron.fields == "0 0 * * *"
