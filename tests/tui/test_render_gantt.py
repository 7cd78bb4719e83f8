"""Gantt bars per attempt and the time ruler above them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rich.cells import cell_len

from tui.render.gantt import Span, gantt_bar, gantt_ruler


def at(minute: int, second: int) -> float:
    return datetime(2026, 1, 1, 9, minute, second, tzinfo=UTC).timestamp()


WINDOW = (at(0, 3), at(4, 15))  # run 1042 of TUI.md's Run detail
LOAD_DB = [
    Span(at(1, 36), at(2, 6), "Retrying"),
    Span(at(2, 21), at(2, 51), "Retrying", queued_from=at(2, 6)),
    Span(at(3, 21), at(4, 15), "Failed", queued_from=at(2, 51)),
]


def bar(spans: list[Span]) -> str:
    return gantt_bar(spans, WINDOW, 42, now=at(4, 15), color=False).plain


def test_the_run_detail_example() -> None:
    assert gantt_ruler(WINDOW, 42) == "09:00     09:01     09:02     09:03       "
    assert bar([Span(at(0, 3), at(0, 15), "Success")]) == "██" + " " * 40
    assert (
        bar([Span(at(0, 44), at(1, 35), "Success")]) == f"{' ' * 7}{'█' * 8}{' ' * 27}"
    )
    assert bar(LOAD_DB) == " " * 16 + "▃▃▃▃▃░░▃▃▃▃▃░░░░░▃▃▃▃▃▃▃▃✗"
    assert bar([]) == " " * 42


def test_attempt_colours_and_waits() -> None:
    text = gantt_bar(LOAD_DB, WINDOW, 42, now=at(4, 15))
    styles = [(span.start, span.end, span.style) for span in text.spans]
    assert styles == [
        (16, 21, "gold1"), (21, 23, "grey50"), (23, 28, "gold1"), (28, 33, "grey50"),
        (33, 42, "bold red"),
    ]  # fmt: skip


def test_no_color_has_no_spans() -> None:
    assert gantt_bar(LOAD_DB, WINDOW, 42, now=at(4, 15), color=False).spans == []


def test_a_running_attempt_grows_to_now() -> None:
    running = [Span(at(2, 0), None, "Running")]
    early = gantt_bar(running, WINDOW, 42, now=at(2, 30), color=False).plain
    later = gantt_bar(running, WINDOW, 42, now=at(3, 30), color=False).plain
    assert early.strip() == "█" * 5
    assert later.strip() == "█" * 15
    assert gantt_bar(running, WINDOW, 42, now=at(3, 30)).spans[0].style == "cyan"


def test_a_queued_task_is_a_wait_until_now() -> None:
    queued = [Span(at(1, 0), None, "Pending")]
    assert bar(queued).strip() == "░" * 32


def test_a_retry_that_has_not_started_yet_is_a_wait() -> None:
    spans = [Span(at(1, 0), at(2, 0), "Retrying"), Span(at(2, 0), None, "Retrying")]
    assert bar(spans).strip() == "▃" * 10 + "░" * 22


def test_a_tiny_attempt_still_gets_one_cell() -> None:
    assert bar([Span(at(2, 0), at(2, 0), "Success")]).strip() == "█"
    assert bar([Span(at(4, 15), at(4, 15), "Failed")]) == " " * 41 + "✗"


def test_attempts_outside_the_window_are_not_drawn() -> None:
    assert bar([Span(at(5, 0), at(6, 0), "Success")]) == " " * 42


@pytest.mark.parametrize("width", [0, 1, 7, 80])
def test_exactly_width_cells(width: int) -> None:
    assert cell_len(gantt_bar(LOAD_DB, WINDOW, width, now=at(4, 15)).plain) == width
    assert len(gantt_ruler(WINDOW, width)) == width


def test_a_zero_width_window_draws_nothing() -> None:
    empty = gantt_bar(LOAD_DB, (at(1, 0), at(1, 0)), 10, now=at(4, 15), color=False)
    assert empty.plain == " " * 10
    assert gantt_ruler((at(1, 0), at(1, 0)), 10) == "09:01:00  "
    assert gantt_ruler((at(1, 0), at(1, 0)), 4) == "    "


def test_short_windows_have_seconds_and_long_ones_round_hours() -> None:
    assert (
        gantt_ruler((at(0, 0), at(0, 40)), 40)
        == "09:00:00  09:00:10  09:00:20  09:00:30  "
    )
    assert (
        gantt_ruler((at(0, 0), at(0, 0) + 7200), 40)
        == "09:00     09:30     10:00     10:30     "
    )


def test_ruler_ticks_fall_on_round_local_times() -> None:
    ruler = gantt_ruler((at(0, 0), at(0, 0) + 3600), 40, tz="Asia/Kolkata")
    assert ruler == "14:30     14:45     15:00     15:15     "
