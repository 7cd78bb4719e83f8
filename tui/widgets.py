"""Widgets the screens share: a DataTable with vim keys that updates rows in place, and
the confirmation modal every mutating action goes through."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Log, Static

Cell = Text | str


class VimTable(DataTable[Cell]):
    """A DataTable with j/k/g/G and a `show` that diffs rows by key.

    Changed cells are updated in place, so the cursor and the scroll stay where they are;
    the rows are rebuilt only when the set or the order of keys changes, and then the
    cursor goes back to the row it was on.
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
        Binding("ctrl+d", "page_down", "Page down", show=False),
        Binding("ctrl+u", "page_up", "Page up", show=False),
    ]

    def __init__(self, columns: Sequence[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._columns = columns
        self._rows: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for key, label in self._columns:
            self.add_column(label, key=key)

    @property
    def selected_key(self) -> str | None:
        """The key of the row under the cursor, if any."""
        if (
            not self._order
            or self.cursor_row < 0
            or self.cursor_row >= len(self._order)
        ):
            return None
        return self._order[self.cursor_row]

    def show(self, rows: Sequence[tuple[str, Sequence[Cell]]]) -> None:
        """Display `rows` (key, cells) in this order, touching only what changed."""
        order = [key for key, _ in rows]
        if order != self._order:
            selected = self.selected_key
            self.clear()
            for key, cells in rows:
                self.add_row(*cells, key=key)
            self._rows = {key: tuple(cells) for key, cells in rows}
            self._order = order
            if selected in self._rows:
                self.move_cursor(row=order.index(selected), scroll=False)
            return
        for key, cells in rows:
            old = self._rows[key]
            for (column, _), before, after in zip(
                self._columns, old, cells, strict=True
            ):
                if before != after:
                    self.update_cell(key, column, after)
            self._rows[key] = tuple(cells)


class ConfirmModal(ModalScreen[bool]):
    """Names the action and its targets, previews the effect; y/enter confirms."""

    BINDINGS = [
        Binding("y", "confirm", "Confirm"),
        Binding("enter", "confirm", "Confirm", show=False),
        Binding("n", "cancel_modal", "Cancel"),
        Binding("escape", "cancel_modal", "Cancel", show=False),
    ]
    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical {
        width: 72; height: auto; max-height: 80%; border: thick $warning;
        background: $surface; padding: 1 2;
    }
    ConfirmModal .title { text-style: bold; }
    ConfirmModal Horizontal { height: auto; margin-top: 1; }
    """

    def __init__(self, title: str, targets: Sequence[str], effect: str) -> None:
        super().__init__()
        self.title_text, self.targets, self.effect = title, list(targets), effect

    def compose(self) -> ComposeResult:
        shown = self.targets[:20]
        more = len(self.targets) - len(shown)
        lines = [*(f"  • {t}" for t in shown), *([f"  +{more} more"] if more else [])]
        with Vertical():
            yield Static(Text(self.title_text), classes="title")
            yield Static(Text("\n".join(lines)))
            yield Static(Text(self.effect))
            with Horizontal():
                yield Button("Cancel (n)", id="no", variant="default")
                yield Button("Confirm (y)", id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()  # destructive: the default is Cancel

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel_modal(self) -> None:
        self.dismiss(False)


class FollowLog(Log):
    """A log that follows new lines while it is at the bottom, and otherwise keeps its
    place and counts what arrived: its title reads FOLLOW or PAUSED +N (toolong's way).
    `G`/end goes back to the bottom and follows again."""

    BINDINGS = [
        Binding("G", "follow", "Follow", show=False),
        Binding("end", "follow", "Follow", show=False),
        Binding("g", "scroll_home", "Top", show=False),
    ]

    def __init__(self, **kwargs: object) -> None:
        super().__init__(max_lines=10_000, **kwargs)  # type: ignore[arg-type]
        self.unseen = 0
        """Lines written while the view was not at the bottom."""
        self.border_title = "FOLLOW"

    def append(self, lines: Sequence[str]) -> None:
        """Write lines: scrolled to the end if following, else counted as unseen."""
        following = self.line_count == 0 or self.is_vertical_scroll_end
        self.write_lines(lines, scroll_end=following)
        self.unseen = 0 if following else self.unseen + len(lines)
        self.border_title = "FOLLOW" if following else f"PAUSED +{self.unseen}"

    def action_follow(self) -> None:
        self.scroll_end(animate=False)
        self.unseen = 0
        self.border_title = "FOLLOW"
