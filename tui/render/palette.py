"""The state palette (glyph, colour, word per state) and the plain-text helpers.

Every place that shows a state goes through `state_cell` or `STATES`, so `NO_COLOR` and a
theme override (replace entries of `STATES` at start-up, before anything is drawn: the DAG
layout is cached) apply everywhere. `clean` is the one door through which user-controlled
text (task names, labels, messages) enters a `Text`: it is never read as markup or escapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import get_character_cell_size
from rich.text import Text

__all__ = [
    "MUTED",
    "STATES",
    "Cell",
    "StateStyle",
    "clean",
    "color_enabled",
    "glyph",
    "join_cells",
    "state_cell",
    "style_of",
    "truncate",
]


@dataclass(frozen=True, slots=True)
class StateStyle:
    """How one state looks on screen."""

    glyph: str
    """One or two characters, one cell each (`◷!` for Late)."""
    color: str
    """A Rich style string; `""` for the terminal's default."""
    word: str
    """The state's name as shown next to the glyph."""


MUTED = "grey50"
STATES: dict[str, StateStyle] = {
    name: StateStyle(glyph_, color, name)
    for name, glyph_, color in [
        ("Pending", "…", MUTED),
        ("Queued", "…", MUTED),
        ("Submitted", "…", MUTED),
        ("Scheduled", "◷", "steel_blue"),
        ("Late", "◷!", "yellow"),
        ("Paused", "⏸", "blue"),
        ("Resume", "▷", "cyan"),
        ("Retrying", "↻", "gold1"),
        ("Running", "▶", "cyan"),
        ("Cancelling", "◧", "magenta"),
        ("Success", "✓", "green"),
        ("Cached", "⟲", "dim green"),
        ("Mapped", "⧉", "green"),
        ("Skipped", "↷", MUTED),
        ("Looped", "↺", "green"),
        ("Cancelled", "■", MUTED),
        ("Failed", "✗", "bold red"),
        ("TimedOut", "⧖", "red"),
        ("TriggerFailed", "⊘", "dark_orange"),
        ("Crashed", "✘", "bold red"),
        # A scheduled run's status once its flow run ended; callers show the flow run's
        # own state when they know it.
        ("Finished", "●", MUTED),
    ]
}
"""Every state name durable stores (task, flow and scheduled-run states)."""

UNKNOWN = StateStyle("?", MUTED, "?")

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def clean(value: object) -> str:
    """Return `value` as text with every control character replaced by U+FFFD.

    Escape sequences, newlines and tabs would move the cursor or break a cell's width,
    so none of them survive; markup needs no escaping because no caller parses markup.
    """
    return _CONTROL.sub(
        "\N{REPLACEMENT CHARACTER}", "" if value is None else str(value)
    )


def truncate(text: str, width: int) -> str:
    """Cut `text` to at most `width` terminal cells, ending in `…` when it was cut."""
    if width <= 0:
        return ""
    cells = [get_character_cell_size(char) for char in text]
    if sum(cells) <= width:
        return text
    used, kept = 1, 0  # the ellipsis takes one cell
    while used + cells[kept] <= width:
        used += cells[kept]
        kept += 1
    return text[:kept] + "…"


def style_of(name: str) -> StateStyle:
    """Return the style of a state name; an unknown name gets `?`, never an error."""
    found = STATES.get(name)
    if found is not None:
        return found
    return StateStyle(UNKNOWN.glyph, UNKNOWN.color, clean(name) or UNKNOWN.word)


def glyph(name: str) -> str:
    """Return the glyph of a state name."""
    return style_of(name).glyph


def color_enabled() -> bool:
    """Return False when the user asked for no colour (https://no-color.org)."""
    return not os.environ.get("NO_COLOR")


def state_cell(name: str, *, color: bool | None = None, word: bool = True) -> Text:
    """Return `glyph word` (or just the glyph) in the state's colour.

    Args:
        name: a state name; unknown names show as `? name`.
        color: force colour on or off; None follows `NO_COLOR`.
        word: append the state's word after the glyph.
    """
    style = style_of(name)
    plain = f"{style.glyph} {style.word}" if word else style.glyph
    text = Text()
    use_color = color_enabled() if color is None else color
    text.append(plain, style.color if use_color and style.color else None)
    return text


Cell = tuple[str, str]
"""One terminal cell: its character (`""` behind a wide character) and its style."""


def join_cells(cells: Sequence[Cell], color: bool) -> Text:
    """Build a Text from cells, one span per run of equal style; no spans without colour."""
    text = Text()
    start = 0
    for i in range(1, len(cells) + 1):
        if i == len(cells) or cells[i][1] != cells[start][1]:
            chunk = "".join(char for char, _ in cells[start:i])
            text.append(chunk, cells[start][1] if color and cells[start][1] else None)
            start = i
    return text
