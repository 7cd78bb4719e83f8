"""The history grid: duration bars, run states, one row per task, newest run right."""

from __future__ import annotations

from rich.text import Text

from tui.render.grid import GridRun, grid_fits, history_grid

TASKS = ["extract", "load", "report"]
RUNS = [
    GridRun("r1", "Success", 60, {"extract": "Success", "load": "Success", "report": "Success"}),
    GridRun("r2", "Failed", 120, {"extract": "Success", "load": "Failed", "report": "TriggerFailed"}),
    GridRun("r3", "Success", 30, {"extract": "Cached", "load": "Success"}),
    GridRun("r4", "Running", None, {"extract": "Success", "load": "Running", "report": "Pending"}),
]  # fmt: skip


def plain(lines: list[Text]) -> list[str]:
    return [line.plain for line in lines]


def test_the_grid() -> None:
    assert plain(history_grid(TASKS, RUNS, width=40, color=False)) == [
        "        ▄ █ ▂",
        "        ✓ ✗ ✓ ▶",
        "extract ✓ ✓ ⟲ ✓",
        "load    ✓ ✗ ✓ ▶",
        "report  ✓ ⊘   …",  # report did not exist in r3's flow version
    ]


def test_cells_take_the_state_colours() -> None:
    lines = history_grid(TASKS, RUNS, width=40)
    assert [(s.start, s.style) for s in lines[0].spans] == [(8, "grey50"), (10, "grey50"), (12, "grey50")]  # fmt: skip
    load = [
        (lines[3].plain[s.start : s.end], s.style) for s in lines[3].spans if s.style
    ]
    assert load == [("✓", "green"), ("✗", "bold red"), ("✓", "green"), ("▶", "cyan")]


def test_no_color_has_no_spans() -> None:
    assert all(
        not line.spans for line in history_grid(TASKS, RUNS, width=40, color=False)
    )


def test_labels_give_way_to_runs_down_to_a_third_of_the_width() -> None:
    assert plain(history_grid(TASKS, RUNS, width=12, color=False)) == [
        "     ▄ █ ▂",
        "     ✓ ✗ ✓ ▶",
        "ext… ✓ ✓ ⟲ ✓",
        "load ✓ ✗ ✓ ▶",
        "rep… ✓ ⊘   …",
    ]


def test_only_the_newest_runs_that_fit_are_shown() -> None:
    task = "a_very_long_task_name_that_goes_on"
    lines = history_grid([task], RUNS, width=10, color=False)
    assert plain(lines) == ["    █ ▂", "    ✗ ✓ ▶", "a_…"]  # r1 did not fit


def test_long_labels_are_cut_to_leave_room_for_runs() -> None:
    task = "a_very_long_task_name_that_goes_on"
    lines = history_grid([task], RUNS, width=20, color=False)
    assert plain(lines) == [
        "             ▄ █ ▂",
        "             ✓ ✗ ✓ ▶",
        "a_very_long…",
    ]


def test_hostile_task_names_are_plain_text() -> None:
    name = "[bold red]x\x1b[2J"
    lines = history_grid(
        [name], [GridRun("r", "Success", 1, {name: "Failed"})], width=40
    )
    assert lines[2].plain == "[bold red]x\ufffd[2J ✗"


def test_empty_and_tiny() -> None:
    assert plain(history_grid([], [], width=40)) == ["", ""]
    assert plain(history_grid(TASKS, RUNS, width=0)) == ["", "", "", "", ""]
    assert plain(history_grid(["load"], RUNS, width=3, color=False)) == [
        "",
        "  ▶",
        "… ▶",
    ]


def test_grid_fits_says_how_many_runs_are_shown() -> None:
    task = "a_very_long_task_name_that_goes_on"
    assert grid_fits([task], len(RUNS), 10) == 3  # as drawn above: r1 did not fit
    assert grid_fits(TASKS, len(RUNS), 40) == 4
    assert grid_fits(TASKS, len(RUNS), 0) == 0


def test_the_cursor_cell_is_reversed_with_or_without_colour() -> None:
    for color in (True, False):
        lines = history_grid(TASKS, RUNS, width=40, color=color, cursor=(3, 1))
        reversed_ = [
            (line.plain[s.start : s.end], i)
            for i, line in enumerate(lines)
            for s in line.spans
            if "reverse" in str(s.style)
        ]
        assert reversed_ == [("✗", 3)]  # load in r2


def test_the_cursor_on_an_empty_cell_shows_a_dot() -> None:
    lines = history_grid(TASKS, RUNS, width=40, color=False, cursor=(4, 2))
    assert lines[4].plain == "report  ✓ ⊘ · …"


def test_a_cursor_on_a_run_not_shown_draws_nothing() -> None:
    task = "a_very_long_task_name_that_goes_on"
    lines = history_grid([task], RUNS, width=10, cursor=(1, 0))
    assert not any("reverse" in str(s.style) for line in lines for s in line.spans)
