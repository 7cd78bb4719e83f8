"""Durations, relative times and clock times."""

from __future__ import annotations

import pytest

from tui.render.timefmt import clock, duration, relative

NOON = 1_767_268_800.0  # 2026-01-01 12:00:00 UTC


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "—"), (0, "0.0s"), (0.4, "0.4s"), (9.99, "9.9s"), (12, "12s"), (59.9, "59s"),
     (60, "1m00s"), (252, "4m12s"), (140, "2m20s"), (7380, "2h03m"), (3 * 86400 + 4 * 3600, "3d04h"),
     (-5, "0.0s")],
)  # fmt: skip
def test_duration(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("offset", "shown"),
    [(0, "now"), (-0.5, "now"), (-12, "12s ago"), (-185, "3m ago"), (-7300, "2h ago"),
     (-3 * 86400, "3d ago"), (180, "in 3m"), (2 * 86400 + 5, "in 2d")],
)  # fmt: skip
def test_relative(offset: float, shown: str) -> None:
    assert relative(NOON + offset, NOON) == shown


def test_relative_unknown() -> None:
    assert relative(None, NOON) == "—"


def test_clock_in_utc_and_in_a_zone() -> None:
    assert clock(NOON + 96) == "12:01:36"
    assert clock(NOON + 96, "Europe/Paris") == "13:01:36"
    assert clock(None) == "—"


def test_clock_of_an_impossible_instant_is_a_dash() -> None:
    assert clock(1e15) == "—"
