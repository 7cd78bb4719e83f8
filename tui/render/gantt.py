"""The per-attempt Gantt bar of a task run and the time ruler above the bars.

A bar is scaled to a window (the run's start to its end, or to now while it runs): `░` is
a wait (queued, or waiting for a retry), `█` a run that ended well or is still running,
`▃` a run that ended badly, and a failed attempt's last cell is its end-state glyph.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text

from tui.render.palette import MUTED, Cell, join_cells, style_of
from tui.render.timefmt import localize

__all__ = ["Span", "gantt_bar", "gantt_ruler"]

WAIT, FULL, SHORT = "░", "█", "▃"
WAITING = frozenset(
    ["Pending", "Queued", "Submitted", "Scheduled", "Late", "Paused", "Resume"]
)
"""States in which an attempt has not started running: drawn as a wait."""
FAILED_END = frozenset(["Failed", "TimedOut", "TriggerFailed", "Crashed", "Cancelled"])
"""End states that get a short bar and their glyph in the last cell."""
SHORT_END = FAILED_END | {"Retrying"}


@dataclass(frozen=True)
class Span:
    """One attempt of a task run, in seconds since the epoch."""

    start: float
    """When the attempt started running (or started waiting, for a waiting state)."""
    end: float | None
    """When it ended; None while it is still running or waiting."""
    state: str
    """The state it ended in, or its current state while it runs."""
    queued_from: float | None = None
    """When it started waiting (queued, or the previous attempt's end before a retry)."""


def _is_waiting(span: Span) -> bool:
    """Whether the attempt never ran: queued, paused, or still waiting for its retry."""
    return span.state in WAITING or (span.state == "Retrying" and span.end is None)


def _wait(span: Span, now: float) -> tuple[float, float] | None:
    """Return when an attempt waited (queued, or for a retry), if it did."""
    if _is_waiting(span):  # it never started: all of it is a wait
        since = span.start if span.queued_from is None else span.queued_from
        return since, now if span.end is None else span.end
    return None if span.queued_from is None else (span.queued_from, span.start)


def gantt_bar(
    spans: Sequence[Span],
    window: tuple[float, float],
    width: int,
    *,
    now: float,
    color: bool = True,
) -> Text:
    """Draw a task run's attempts as exactly `width` cells scaled to `window`.

    Every attempt that overlaps the window gets at least one cell, so a 1 s attempt in a
    2 h run stays visible; later attempts draw over earlier ones, bars over waits.
    """
    width = max(width, 0)
    cells: list[Cell] = [(" ", "")] * width
    start, end = window
    if width == 0 or end <= start:
        return join_cells(cells, color)
    scale = width / (end - start)

    def col(at: float) -> int:
        return math.floor((at - start) * scale + 0.5)

    def paint(first: int, last: int, cell: Cell) -> None:
        for x in range(max(first, 0), min(last, width)):
            cells[x] = cell

    for span in spans:  # waits first: a bar always wins over a wait
        wait = _wait(span, now)
        if wait is not None:
            paint(col(wait[0]), col(wait[1]), (WAIT, MUTED))
    for span in spans:
        finish = now if span.end is None else span.end
        if _is_waiting(span) or span.start > end or finish < start:
            continue
        style = style_of(span.state)
        first = min(max(col(span.start), 0), width - 1)
        last = max(min(col(finish), width), first + 1)
        ended_badly = span.end is not None and span.state in SHORT_END
        paint(first, last, (SHORT if ended_badly else FULL, style.color))
        if span.end is not None and span.state in FAILED_END and span.end <= end:
            cells[last - 1] = (style.glyph[0], style.color)
    return join_cells(cells, color)


STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600]
STEPS += [43200, 86400, 172800, 604800]


def _ruler_step(span: float, width: int) -> tuple[float, str]:
    """Pick the smallest tick step whose labels fit with two spaces between them."""
    for step in STEPS:
        fmt = "%H:%M:%S" if step < 60 else "%H:%M" if step < 86400 else "%m-%d"
        if step * width / span >= len(fmt) + 2:  # a label is as long as its format
            return step, fmt
    weeks = math.ceil(7 * span / width / STEPS[-1])
    return weeks * STEPS[-1], "%m-%d"


def gantt_ruler(window: tuple[float, float], width: int, tz: str = "UTC") -> str:
    """Draw tick labels (`09:00   09:02`) for `window` in exactly `width` characters.

    Ticks fall on round times in `tz`; a label starts at its tick's cell and is left out
    rather than overlap its neighbour or the edge. Short windows get seconds.
    """
    width = max(width, 0)
    line = [" "] * width
    start, end = window
    if width == 0:
        return ""
    if end <= start:  # nothing to scale: just say when
        label = localize(start, tz).strftime("%H:%M:%S")
        return label.ljust(width) if len(label) <= width else "".join(line)
    step, fmt = _ruler_step(end - start, width)
    offset = localize(start, tz).utcoffset()
    shift = 0.0 if offset is None else offset.total_seconds()
    tick = math.floor((start + shift) / step) * step - shift
    free = 0  # the first cell a label may use
    try:
        while tick <= end:
            x = math.floor((tick - start) * width / (end - start) + 0.5)
            label = localize(tick, tz).strftime(fmt)
            if x >= free and x + len(label) <= width:
                line[x : x + len(label)] = label
                free = x + len(label) + 1
            tick += step
    except (ValueError, OverflowError, OSError):  # past year 9999: no more labels
        pass
    return "".join(line)
