"""Sparklines and percentiles."""

from __future__ import annotations

import pytest

from tui.render.spark import percentile, sparkline


def test_sparkline_scales_from_minimum_to_maximum() -> None:
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([10, 80, 45]) == "▁█▅"  # halves round up


def test_missing_values_are_spaces() -> None:
    assert sparkline([1, None, 8]) == "▁ █"
    assert sparkline([None, None]) == "  "


def test_equal_values_get_the_middle_bar() -> None:
    assert sparkline([5, 5, 5]) == "▄▄▄"


def test_empty() -> None:
    assert sparkline([]) == ""
    assert sparkline([1, 2], width=0) == ""


def test_longer_input_is_resampled_by_bucket_maximum() -> None:
    values: list[float | None] = [1, 1, 1, 9, 1, 1, None, None]
    assert sparkline(values, width=4) == "▁█▁ "
    assert sparkline([1, 2, 3], width=8) == "▁▅█"  # shorter input is not padded


@pytest.mark.parametrize(("q", "value"), [(0, 1.0), (50, 3.0), (95, 4.8), (100, 5.0)])
def test_percentile_interpolates(q: float, value: float) -> None:
    assert percentile([5, None, 1, 3, 2, 4], q) == pytest.approx(value)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None
    assert percentile([None], 95) is None
