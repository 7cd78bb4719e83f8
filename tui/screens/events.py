"""Area 5, Logs: a global tail of log lines across runs, newest at the bottom, filtered
with `flow:NAME level:warning run:ID words`; `enter` opens the line's run.

It is a table, not a Log, so that a line can be selected and opened: the cursor follows
the newest line while it is on the last row, and stays put once moved up.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Input, Static

from durable.store.browse import LogFilter, TailLine, parse_log_filter
from tui.render.palette import clean, truncate
from tui.render.timefmt import clock
from tui.screens.base import FilteredScreen, plain
from tui.widgets import Cell, VimTable

LINE_COLUMNS = [("time", "Time"), ("level", "Level"), ("flow", "Flow"), ("run", "Run"),
                ("task", "Task"), ("message", "Message")]  # fmt: skip
LIMIT = 1_000
"""Lines kept on screen (the newest)."""
MESSAGE_WIDTH = 200
LEVELS = {10: ("DEBUG", "grey50"), 20: ("INFO", ""), 30: ("WARNING", "yellow"),
          40: ("ERROR", "bold red"), 50: ("CRITICAL", "bold red reverse")}  # fmt: skip


def line_cells(line: TailLine) -> list[Cell]:
    """A log line as table cells: every value from the database as plain text."""
    name, style = LEVELS.get(line.level, (str(line.level), ""))
    task = line.task_slug or "—"
    if line.task_slug and line.map_index >= 0:
        task += f"[{line.map_index}]"
    first = clean(line.message.splitlines()[0] if line.message else "")
    return [plain(clock(line.timestamp)), Text(name, style=style),
            plain(line.flow_name or "—"), plain(line.flow_run_id or "—"), plain(task),
            plain(truncate(first, MESSAGE_WIDTH))]  # fmt: skip


class EventsScreen(FilteredScreen):
    """Area 5: the latest log lines of every run; / filters, enter opens the run."""

    AUTO_FOCUS = "#lines"
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("f", "follow", "Follow"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__("lines", parse_log_filter, LogFilter())
        self.lines: list[TailLine] = []
        self._after = 0

    def filter_changed(self) -> None:
        self.lines, self._after = [], 0  # the tail starts over under the new filter

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Input(placeholder="flow:etl level:warning run:ID words  (enter applies, "
                    "esc clears)", id="filter", classes="hidden")  # fmt: skip
        yield VimTable(LINE_COLUMNS, id="lines", follow=True)
        yield Footer()

    def load(self, model: Any, force: bool) -> Any:
        if not model.changed() and not force:
            return None
        wanted = self.filter
        return wanted, model.tail(wanted, after_id=self._after, limit=LIMIT)

    def apply(self, data: Any) -> None:
        wanted, lines = data
        if wanted is not self.filter:
            return  # read for a filter since replaced: the next poll reads again
        if lines:
            self._after = lines[-1].id
            self.lines = (self.lines + lines)[-LIMIT:]
        table = self.query_one("#lines", VimTable)
        table.show([(str(line.id), line_cells(line)) for line in self.lines])
        title = f"Logs · {len(self.lines)}"
        if self.filter_text:
            title += f" · filter: {self.filter_text}"
        table.border_title = title
        self.query_one("#status", Static).update(plain(title))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        key = event.row_key.value
        line = next((ln for ln in self.lines if str(ln.id) == key), None)
        if line is not None and line.flow_run_id is not None:
            from tui.screens.run_detail import RunDetailScreen

            self.app.push_screen(RunDetailScreen(line.flow_run_id))

    def action_follow(self) -> None:
        """Go to the newest line; the cursor follows new lines from there."""
        table = self.query_one("#lines", VimTable)
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)
