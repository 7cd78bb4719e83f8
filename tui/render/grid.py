"""The history grid (Airflow's grid view): one column per run, one row per task.

Row 0 holds each run's duration as a block bar scaled to the longest run shown, row 1
each run's state glyph, and every further row a task's state glyph in each run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.text import Text

from tui.render.palette import MUTED, Cell, clean, join_cells, style_of, truncate
from tui.render.spark import BARS

__all__ = ["CELL", "GridRun", "grid_fits", "history_grid"]

CELL = 2
"""Columns per run: the glyph and a space, so neighbouring runs stay apart."""


@dataclass(frozen=True)
class GridRun:
    """One flow run as a column of the grid."""

    run_id: str
    state: str
    """The flow run's state name."""
    duration: float | None
    """Seconds from start to end (or to now while running); None if it never started."""
    tasks: Mapping[str, str]
    """Task key to the state of that task's run in this flow run."""


def _bar(duration: float | None, longest: float) -> Cell:
    if duration is None:
        return " ", ""
    if longest <= 0:
        return BARS[0], MUTED
    level = min(max(round(duration / longest * len(BARS)), 1), len(BARS))
    return BARS[level - 1], MUTED


def _glyph(state: str | None) -> Cell:
    if state is None:  # this task did not exist in that run's flow version
        return " ", ""
    style = style_of(state)
    return style.glyph[0], style.color


def _geometry(tasks: Sequence[str], count: int, width: int) -> tuple[int, int]:
    """The label column's width and how many of `count` runs fit in `width`."""
    width = max(width, 0)
    longest_label = max((cell_len(clean(task)) for task in tasks), default=0)
    label_width = min(longest_label, max(width - CELL * count, width // 3))
    label_width = max(min(label_width, width - 1), 0)
    fits = max(width - label_width, 0) // CELL  # the last run needs no trailing space
    return label_width, min(fits, count)


def grid_fits(tasks: Sequence[str], count: int, width: int) -> int:
    """Return how many of `count` runs `history_grid` shows in `width` columns."""
    return _geometry(tasks, count, width)[1]


def history_grid(
    tasks: Sequence[str],
    runs: Sequence[GridRun],
    *,
    width: int,
    color: bool = True,
    cursor: tuple[int, int] | None = None,
) -> list[Text]:
    """Draw the grid in at most `width` columns: 2 header rows, then one row per task.

    `runs` come oldest first; when they do not all fit, the newest (last) are kept, so
    the newest run is always the rightmost column. The label column takes what the runs
    leave, and at least a third of the width; longer labels are cut with `…`.
    `cursor` (row, index into `runs`) is drawn reversed, with or without colour; an
    empty cell under it shows `·`.
    """
    width = max(width, 0)
    labels = [clean(task) for task in tasks]
    label_width, fits = _geometry(tasks, len(runs), width)
    shown = list(runs[-fits:]) if fits else []
    at = None
    if cursor is not None and 0 <= cursor[1] - (len(runs) - len(shown)) < len(shown):
        at = (cursor[0], cursor[1] - (len(runs) - len(shown)))
    longest = max((r.duration or 0.0 for r in shown), default=0.0)
    rows = [
        [_bar(r.duration, longest) for r in shown],
        [_glyph(r.state) for r in shown],
    ]
    rows += [[_glyph(r.tasks.get(task)) for r in shown] for task in tasks]
    lines: list[Text] = []
    for i, row in enumerate(rows):
        label = labels[i - 2] if i >= 2 else ""
        fitted = truncate(label, label_width)
        cells: list[Cell] = [(fitted + " " * (label_width - cell_len(fitted)), "")]
        cells += [(" ", "")] if width > label_width else []
        if at is not None and at[0] == i and row[at[1]][0] == " ":
            row[at[1]] = ("·", MUTED)
        for char, style in row:
            cells += [(char, style), (" ", "")]
        text = join_cells(cells, color)
        if at is not None and at[0] == i:
            x = label_width + 1 + CELL * at[1]
            text.stylize("reverse", x, x + 1)
        text.rstrip()
        lines.append(text)
    return lines
