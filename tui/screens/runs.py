"""Area 2, the default: every run, newest first, filtered with `field:value`."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Static,
)

from durable.store.browse import RunFilter, RunRow, parse_filter
from tui.render.palette import state_cell
from tui.render.timefmt import duration, relative
from tui.screens.base import ACTIVE, FilteredScreen, plain
from tui.widgets import Cell, VimTable

# Runs ----------------------------------------------------------------------------------
RUN_COLUMNS = [("state", "State"), ("run", "Run"), ("flow", "Flow"), ("trigger", "Trigger"),
               ("started", "Started"), ("duration", "Duration"), ("tasks", "Tasks")]  # fmt: skip
TRIGGERS = {"schedule": "⏰ schedule", "manual": "▷ manual", "backfill": "⏪ backfill"}


def task_counts(counts: dict[str, int] | Any) -> Text:
    """`✓12 ✗1 ▶2` from a run's task states."""
    out = Text()
    for name, count in sorted(counts.items(), key=lambda item: -item[1]):
        cell = state_cell(name, word=False, color=None)
        if out:
            out.append(" ")
        out.append_text(cell)
        out.append(str(count))
    return out


def run_cells(run: RunRow, now: float) -> list[Cell]:
    end = run.ended_at if run.ended_at is not None else now
    took = duration(end - run.started_at) if run.started_at is not None else "—"
    return [
        state_cell(run.state), plain(run.id), plain(f"{run.flow_name} v{run.flow_version}"),
        plain(TRIGGERS.get(run.trigger or "", "—")),
        plain(relative(run.started_at or run.created_at, now)), plain(took),
        task_counts(dict(run.tasks)),
    ]  # fmt: skip


class RunsScreen(FilteredScreen):
    """Area 2 (default): every run, newest first; / filters, enter opens one."""

    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("e", "errors", "Errors only"),
        Binding("X", "cancel_run", "Cancel", id="run.cancel"),
        Binding("R", "restart", "Retry…", id="run.restart"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__(
            "runs",
            lambda text: parse_filter(text, now=self.durable.clock()),
            RunFilter(),
        )
        self.runs: list[RunRow] = []

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Input(placeholder="state:failed flow:etl since:1h  (enter applies, esc "
                    "clears)", id="filter", classes="hidden")  # fmt: skip
        yield VimTable(RUN_COLUMNS, id="runs")
        yield Footer()

    def load(self, model: Any, force: bool) -> Any:
        if not model.changed() and not force:
            return None
        return model.runs(self.filter)

    def apply(self, data: Any) -> None:
        self.runs = list(data)
        now = self.durable.clock()
        table = self.query_one("#runs", VimTable)
        table.show([(run.id, run_cells(run, now)) for run in self.runs])
        title = f"Runs · {len(self.runs)}"
        if self.filter_text:
            title += f" · filter: {self.filter_text}"
        table.border_title = title
        self.query_one("#status", Static).update(plain(title))

    def tick(self) -> None:
        """Advance the running durations (no query)."""
        if any(run.state in ACTIVE for run in self.runs):
            self.apply(self.runs)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            from tui.screens.run_detail import RunDetailScreen  # imports this module

            self.app.push_screen(RunDetailScreen(event.row_key.value))

    def action_errors(self) -> None:
        self.set_filter("state:failed|timedout|triggerfailed")

    def action_cancel_run(self) -> None:
        key = self.query_one("#runs", VimTable).selected_key
        run = next((r for r in self.runs if r.id == key), None)
        if run is not None:
            self.durable.confirm_cancel(run.id, run.flow_name, run.state)

    def action_restart(self) -> None:
        key = self.query_one("#runs", VimTable).selected_key
        run = next((r for r in self.runs if r.id == key), None)
        if run is not None:
            self.durable.confirm_restart(run)


# Run detail ----------------------------------------------------------------------------
