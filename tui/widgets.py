"""Widgets the screens share: a DataTable with vim keys that updates rows in place, and
the confirmation modal every mutating action goes through."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Log, Static

Cell = Text | str


class VimTable(DataTable[Cell]):
    """A DataTable with j/k/g/G, sorting, marks, copying, and a `show` that diffs rows
    by key.

    Changed cells are updated in place, so the cursor and the scroll stay where they are;
    rows that only come and go at the end are removed and appended; otherwise the rows
    are rebuilt. Either way the cursor stays on the row (key) it was on. `s` cycles the
    sort column and `S` reverses (a header click sorts too): the sort is re-applied on
    every `show`. `space` marks a row (★), `ctrl+a` marks every row, `y` copies the key.
    """

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
        Binding("ctrl+d", "page_down", "Page down", show=False),
        Binding("ctrl+u", "page_up", "Page up", show=False),
        Binding("s", "sort_next", "Sort column", show=False),
        Binding("S", "sort_reverse", "Reverse sort", show=False),
        Binding("space", "mark", "Mark", show=False),
        Binding("ctrl+a", "mark_all", "Mark all", show=False),
        Binding("ctrl+backslash", "clear_marks", "Clear marks", show=False),
        Binding("y", "copy_key", "Copy id", show=False),
    ]
    MARK = Text("★ ", style="bold yellow")
    """Shown before the first cell of a marked row."""

    def __init__(
        self, columns: Sequence[tuple[str, str]], *, follow: bool = False,
        **kwargs: object,
    ) -> None:  # fmt: skip
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)  # type: ignore[arg-type]
        self._columns = columns
        self._given: list[tuple[str, tuple[Cell, ...]]] = []
        self._rows: dict[str, tuple[Cell, ...]] = {}
        self._order: list[str] = []
        self.sort_column: int | None = None
        """The column index rows are sorted by; None: the order `show` was given."""
        self.sort_reverse = False
        self.marked_keys: set[str] = set()
        """The keys of the marked rows (only rows shown: a row that goes loses its mark)."""
        self.follow = follow
        """Keep the cursor on the last row while it is there (a tail)."""

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
        """Display `rows` (key, cells) in this order (or sorted), touching only what
        changed."""
        self._given = [(key, tuple(cells)) for key, cells in rows]
        self._refill()

    def _refill(self) -> None:
        rows = self._sorted(self._given)
        self.marked_keys &= {key for key, _ in rows}
        shown = {key: self._marked(key, cells) for key, cells in rows}
        order = list(shown)
        selected = self.selected_key
        at_end = self.follow and (not self._order or selected == self._order[-1])
        if order == self._order:
            self._update(shown)
        elif self._appends(order, shown):
            pass
        else:
            self.clear()
            for key in order:
                self.add_row(*shown[key], key=key)
            self._rows, self._order = shown, order
        if at_end and order:
            self.move_cursor(row=len(order) - 1)
        elif selected in shown and self.cursor_row != order.index(selected):
            self.move_cursor(row=self.get_row_index(selected))

    def _update(self, shown: dict[str, tuple[Cell, ...]]) -> None:
        for key, cells in shown.items():
            old = self._rows[key]
            for (column, _), before, after in zip(
                self._columns, old, cells, strict=True
            ):
                if before != after:
                    self.update_cell(key, column, after)
            self._rows[key] = cells

    def _appends(self, order: list[str], shown: dict[str, tuple[Cell, ...]]) -> bool:
        """Remove the rows that went and append the new ones, if that gives `order`
        (a tail that drops its oldest rows); False, and nothing done, otherwise."""
        kept = [key for key in self._order if key in shown]
        if order[: len(kept)] != kept or len(kept) < len(self._order) // 2:
            return False
        for key in self._order:
            if key not in shown:
                self.remove_row(key)
                del self._rows[key]
        self._order = kept
        self._update({key: shown[key] for key in kept})
        for key in order[len(kept) :]:
            self.add_row(*shown[key], key=key)
            self._rows[key] = shown[key]
        self._order = order
        return True

    def _marked(self, key: str, cells: tuple[Cell, ...]) -> tuple[Cell, ...]:
        if key not in self.marked_keys or not cells:
            return cells
        first = cells[0] if isinstance(cells[0], Text) else Text(cells[0])
        return (Text.assemble(self.MARK, first), *cells[1:])

    def _sorted(
        self, rows: list[tuple[str, tuple[Cell, ...]]]
    ) -> list[tuple[str, tuple[Cell, ...]]]:
        column = self.sort_column
        if column is None:
            return rows[::-1] if self.sort_reverse else rows
        return sorted(rows, key=lambda row: _natural(row[1][column]),
                      reverse=self.sort_reverse)  # fmt: skip

    # Sorting -----------------------------------------------------------------------
    def action_sort_next(self) -> None:
        """Sort by the next column (after the last: the order given)."""
        column = -1 if self.sort_column is None else self.sort_column
        self.sort_by(None if column + 1 >= len(self._columns) else column + 1)

    def action_sort_reverse(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def sort_by(self, column: int | None, *, reverse: bool = False) -> None:
        """Sort the rows by `column` (None: as given), keeping the cursor on its row."""
        self.sort_column, self.sort_reverse = column, reverse
        self._refill()
        if column is None:
            self.border_subtitle = "reversed" if reverse else ""
        else:
            key, label = self._columns[column]
            self.border_subtitle = f"sort: {label or key} {'▼' if reverse else '▲'}"

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        if event.data_table is self:
            event.stop()
            same = event.column_index == self.sort_column
            self.sort_by(event.column_index, reverse=same and not self.sort_reverse)

    # Marks and copying -------------------------------------------------------------
    def action_mark(self) -> None:
        key = self.selected_key
        if key is not None:
            self.marked_keys ^= {key}
            self._remark([key])

    def action_mark_all(self) -> None:
        """Mark every row shown (unmark them all if they all are marked)."""
        every = set(self._order)
        changed = list(every ^ self.marked_keys)
        self.marked_keys = set() if self.marked_keys == every else every
        self._remark(changed or list(every))

    def action_clear_marks(self) -> None:
        changed, self.marked_keys = list(self.marked_keys), set()
        self._remark(changed)

    def _remark(self, keys: Sequence[str]) -> None:
        given = dict(self._given)
        first = self._columns[0][0] if self._columns else None
        for key in keys:
            if key in self._rows and first is not None:
                cells = self._marked(key, given[key])
                self.update_cell(key, first, cells[0], update_width=True)
                self._rows[key] = cells

    def action_copy_key(self) -> None:
        """Copy the selected row's key (a run id, a flow name) to the clipboard."""
        key = self.selected_key
        if key is not None:
            self.app.copy_to_clipboard(key)
            self.notify(f"copied {key}", markup=False)


def _natural(cell: Cell) -> tuple[tuple[int, int, str], ...]:
    """A sort key that orders numbers by value: `run2` before `run10`, `9s` before `10s`."""
    text = cell.plain if isinstance(cell, Text) else cell
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part.casefold())
        for part in re.split(r"(\d+)", text.strip())
        if part
    )


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
