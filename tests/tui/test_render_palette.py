"""The state palette and the plain-text helpers every renderer uses."""

from __future__ import annotations

import pytest
from rich.cells import cell_len
from rich.text import Span

from tui.render.palette import STATES, clean, color_enabled, glyph, state_cell, truncate

STORED = [
    "Pending", "Scheduled", "Late", "Paused", "Resume", "Retrying", "Running",
    "Cancelling", "Success", "Cached", "Mapped", "Skipped", "Looped", "Cancelled",
    "Failed", "TimedOut", "TriggerFailed", "Crashed", "Finished",
]  # fmt: skip
HOSTILE = "[bold red]x\x1b[2J"


@pytest.mark.parametrize("name", STORED)
def test_every_stored_state_has_a_glyph_one_cell_per_character(name: str) -> None:
    style = STATES[name]
    assert style.glyph
    assert cell_len(style.glyph) == len(style.glyph)
    assert style.word == name


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Success", "✓"), ("Failed", "✗"), ("Running", "▶"), ("Retrying", "↻"),
     ("Scheduled", "◷"), ("Late", "◷!"), ("Pending", "…"), ("Cached", "⟲"),
     ("Skipped", "↷"), ("TriggerFailed", "⊘"), ("TimedOut", "⧖"),
     ("Cancelling", "◧"), ("Cancelled", "■"), ("Paused", "⏸"), ("Mapped", "⧉")],
)  # fmt: skip
def test_glyphs_follow_the_spec(name: str, expected: str) -> None:
    assert glyph(name) == expected


def test_state_cell_is_glyph_and_word_in_the_state_colour() -> None:
    cell = state_cell("Success", color=True)
    assert cell.plain == "✓ Success"
    assert cell.spans == [Span(0, 9, "green")]


def test_state_cell_without_colour_has_no_style_at_all() -> None:
    cell = state_cell("Failed", color=False)
    assert cell.plain == "✗ Failed"
    assert cell.spans == []
    assert not cell.style


def test_state_cell_glyph_only() -> None:
    assert state_cell("Running", color=False, word=False).plain == "▶"


def test_no_color_env_turns_colour_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert not color_enabled()
    assert state_cell("Success").spans == []


def test_empty_no_color_env_keeps_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "")
    assert color_enabled()
    monkeypatch.delenv("NO_COLOR")
    assert state_cell("Success").spans == [Span(0, 9, "green")]


def test_unknown_state_is_a_neutral_question_mark_never_an_error() -> None:
    assert glyph("Bogus") == "?"
    assert state_cell("Bogus", color=False).plain == "? Bogus"


def test_a_hostile_state_name_is_shown_literally() -> None:
    cell = state_cell(HOSTILE, color=True)
    assert cell.plain == "? [bold red]x\ufffd[2J"
    assert [span.style for span in cell.spans] == ["grey50"]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [("plain", "plain"), ("a\nb\tc", "a\ufffdb\ufffdc"), ("\x00\x7f\x9b", "\ufffd" * 3),
     (HOSTILE, "[bold red]x\ufffd[2J"), (None, ""), (42, "42")],
)  # fmt: skip
def test_clean_replaces_every_control_character(raw: object, shown: str) -> None:
    assert clean(raw) == shown


@pytest.mark.parametrize(
    ("text", "width", "cut"),
    [("extract", 10, "extract"), ("extract", 7, "extract"), ("extract", 5, "extr…"),
     ("extract", 1, "…"), ("extract", 0, ""), ("日本語", 4, "日…"), ("日本語", 6, "日本語")],
)  # fmt: skip
def test_truncate_fits_terminal_cells(text: str, width: int, cut: str) -> None:
    assert truncate(text, width) == cut
    assert cell_len(truncate(text, width)) <= max(width, 0)
