"""Flow detail (pushed from Flows): a flow's latest runs as the Airflow grid, its graph
coloured by the latest run, its runs, and each task's durations across the runs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from durable.store.browse import FlowHistory, HistoryRun, TaskCell
from durable.text import clean
from tui.render.dag import Node, render_dag
from tui.render.grid import GridRun, grid_fits, history_grid
from tui.render.palette import color_enabled, state_cell, style_of
from tui.render.spark import percentile, sparkline
from tui.render.timefmt import DASH, clock, duration, relative
from tui.screens.base import ACTIVE, PollingScreen, plain
from tui.screens.runs import RUN_COLUMNS, run_cells
from tui.screens.tables import SchedulesScreen, scheduled_rows
from tui.widgets import Cell, VimTable

LIMIT = 100
"""The runs a Flow detail reads: the grid shows the newest that fit its width."""
SCHEDULED = 30
"""Scheduled runs the Schedule tab lists (the waiting ones first)."""
FAILED = frozenset({"Failed", "TimedOut", "TriggerFailed", "Crashed"})
DURATION_COLUMNS = [("task", "Task"), ("spark", "Duration, oldest → newest"),
                    ("p50", "p50"), ("p95", "p95"), ("last", "Last")]  # fmt: skip
SPARK_WIDTH = 50
RUN_ROW = "(flow run)"
"""The Durations row of the runs themselves."""


def took(start: float | None, end: float | None, now: float) -> float | None:
    """Seconds from `start` to `end` (to `now` while unfinished); None if not started."""
    if start is None:
        return None
    return (end if end is not None else now) - start


class HistoryGrid(Widget, can_focus=True):
    """The history grid with a cell cursor: h/j/k/l or the arrows move it, enter opens
    the task run under it (or the run, on the two header rows)."""

    DEFAULT_CSS = "HistoryGrid { height: auto; padding: 0 1; }"
    BINDINGS = [
        Binding("h,left", "move(0, -1)", "Older run", show=False),
        Binding("l,right", "move(0, 1)", "Newer run", show=False),
        Binding("k,up", "move(-1, 0)", "Up", show=False),
        Binding("j,down", "move(1, 0)", "Down", show=False),
        Binding("enter", "open", "Open", show=False),
    ]

    class Moved(Message):
        """The cursor moved or the history changed: describe the selected cell."""

    class Opened(Message):
        """Enter on a cell: open its task run, or its run (header rows)."""

        def __init__(self, run_id: str, task_run_id: str | None) -> None:
            super().__init__()
            self.run_id, self.task_run_id = run_id, task_run_id

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.history: FlowHistory | None = None
        self.now = 0.0
        self.row = 1
        """0: the duration bars, 1: the run states, 2 on: the tasks in order."""
        self.run_id: str | None = None
        """The run under the cursor; None follows the newest."""

    def on_resize(self) -> None:
        self.post_message(self.Moved())  # the runs shown depend on the width

    def show(self, history: FlowHistory, now: float) -> None:
        self.history, self.now = history, now
        self.row = min(self.row, len(history.tasks) + 1)
        self.refresh(layout=True)
        self.post_message(self.Moved())

    def shown_runs(self) -> list[HistoryRun]:
        """The runs the grid shows at its width, oldest first."""
        if self.history is None:
            return []
        runs = self.history.runs
        fits = grid_fits(self.history.tasks, len(runs), self.content_size.width)
        return list(runs[-fits:]) if fits else []

    def selected(self) -> tuple[HistoryRun | None, str | None]:
        """The run under the cursor and the task slug (None on the header rows)."""
        runs = self.shown_runs()
        if not runs or self.history is None:
            return None, None
        run = next((r for r in runs if r.run.id == self.run_id), runs[-1])
        slug = self.history.tasks[self.row - 2] if self.row >= 2 else None
        return run, slug

    def render(self) -> Text:
        if self.history is None:
            return plain("(loading)")
        if not self.history.runs:
            return plain("(no runs yet)")
        runs = self.history.runs
        run, _ = self.selected()
        at = (self.row, runs.index(run)) if run is not None else None
        grid = [
            GridRun(r.run.id, r.run.state, took(r.run.started_at, r.run.ended_at, self.now),
                    {slug: cell.state for slug, cell in r.tasks.items()})
            for r in runs
        ]  # fmt: skip
        lines = history_grid(self.history.tasks, grid, width=self.content_size.width,
                             color=color_enabled(), cursor=at)  # fmt: skip
        return Text("\n").join(lines)

    def action_move(self, rows: int, columns: int) -> None:
        if self.history is None:
            return
        self.row = max(0, min(self.row + rows, len(self.history.tasks) + 1))
        runs, (run, _) = self.shown_runs(), self.selected()
        if run is not None and columns:
            index = max(0, min(runs.index(run) + columns, len(runs) - 1))
            self.run_id = None if index == len(runs) - 1 else runs[index].run.id
        self.refresh()
        self.post_message(self.Moved())

    def action_open(self) -> None:
        run, slug = self.selected()
        if run is None:
            return
        cell = run.tasks.get(slug) if slug is not None else None
        if slug is not None and cell is None:
            return  # that task did not exist in this run
        self.post_message(self.Opened(run.run.id, cell.task_run_id if cell else None))


class FlowDetailScreen(PollingScreen):
    """One flow: its history grid, graph, runs and task durations."""

    AUTO_FOCUS = "#grid"
    DEFAULT_CSS = (
        "FlowDetailScreen #cell { height: auto; padding: 0 1; margin-top: 1; }"
    )
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("t", "trigger", "Run now", id="flow.trigger"),
        Binding("T", "trigger_form", "Custom run", id="flow.trigger_form", show=False),
        Binding("P", "pause", "Pause/resume schedule", id="flow.pause", show=False),
        Binding("R", "restart", "Retry…", id="run.restart"),
        Binding("d", "tab('graph')", "Graph"),
        Binding("left_square_bracket", "tab_step(-1)", "Prev tab", show=False),
        Binding("right_square_bracket", "tab_step(1)", "Next tab", show=False),
    ]
    TABS = ("history", "graph", "runs-tab", "durations")
    FOCUS = {"history": "#grid", "graph": "#dag-scroll", "runs-tab": "#flow-runs",
             "durations": "#durations-table"}  # fmt: skip
    """What takes the focus when a tab opens, so its keys work at once."""

    def __init__(self, flow_name: str) -> None:
        super().__init__()
        self.flow_name = flow_name
        self.history: FlowHistory | None = None

    def compose(self) -> ComposeResult:
        yield Static(plain(self.flow_name), id="header")
        with TabbedContent(id="tabs", initial="history"):
            with TabPane("History", id="history"):
                yield HistoryGrid(id="grid")
                yield Static(id="cell")
            with TabPane("Graph", id="graph"):
                yield VerticalScroll(Static(id="dag"), id="dag-scroll")
            with TabPane("Runs", id="runs-tab"):
                yield VimTable(RUN_COLUMNS, id="flow-runs")
            with TabPane("Durations", id="durations"):
                yield VimTable(DURATION_COLUMNS, id="durations-table")
            with TabPane("Schedule", id="schedule"):
                yield Static(id="schedule-line")
                yield VimTable(SchedulesScreen.COLUMNS, id="flow-scheduled")
        yield Footer()

    def load(self, model: Any, force: bool) -> Any:
        if not model.changed() and not force:
            return None
        history = model.flow_history(self.flow_name, LIMIT)
        if history is None:
            return False
        return history, model.scheduled(flow=self.flow_name, limit=SCHEDULED)

    def apply(self, data: Any) -> None:
        if data is False:
            self.query_one("#header", Static).update(plain(f"No flow {self.flow_name}"))
            return
        self.history, scheduled = data
        self.show_history(self.history)
        self._show_schedule(self.history, scheduled)

    def _show_schedule(self, history: FlowHistory, scheduled: Any) -> None:
        """The Schedule tab: the schedule in one line, then its waiting and latest runs
        (the next fire times need the pickled schedule: `durable flows` computes them)."""
        now = self.durable.clock()
        line = (
            f"Schedule: {history.schedule or 'none (durable register a flow with one)'}"
        )
        if history.paused:
            line += " · ⏸ paused (P resumes)"
        if history.next_tick is not None:
            line += f" · next run {clock(history.next_tick)} ({relative(history.next_tick, now)})"
        self.query_one("#schedule-line", Static).update(plain(line))
        self.query_one("#flow-scheduled", VimTable).show(scheduled_rows(scheduled, now))

    def tick(self) -> None:
        """Advance the running durations (no query)."""
        if self.history is not None and any(
            r.run.state in ACTIVE for r in self.history.runs
        ):
            self.show_history(self.history)

    def show_history(self, history: FlowHistory) -> None:
        now = self.durable.clock()
        self.query_one("#header", Static).update(self._header(history, now))
        self.query_one("#grid", HistoryGrid).show(history, now)
        self._show_graph(history)
        runs = self.query_one("#flow-runs", VimTable)
        runs.show([(r.run.id, run_cells(r.run, now)) for r in reversed(history.runs)])
        runs.border_title = clean(f"Runs of {history.name} · {len(history.runs)}")
        self.query_one("#durations-table", VimTable).show(_durations(history, now))

    def _header(self, history: FlowHistory, now: float) -> Text:
        header = plain(f"{history.name}@v{history.version} · ")
        header.append(clean(history.schedule or "no schedule"))
        if history.paused:
            header.append(" ⏸ paused")
        if history.next_tick is not None:
            header.append(f" · next {relative(history.next_tick, now)}")
        if history.runs:
            last = history.runs[-1].run
            header.append(" · last ")
            header.append_text(state_cell(last.state, word=False))
            header.append(f" {relative(last.started_at or last.created_at, now)}")
        states = Counter(r.run.state for r in history.runs)
        header.append(f" · last {len(history.runs)} runs: ")
        for glyph_of, count in (("Success", states["Success"]),
                                ("Failed", sum(states[s] for s in FAILED)),
                                ("Running", sum(states[s] for s in ACTIVE))):  # fmt: skip
            header.append_text(state_cell(glyph_of, word=False))
            header.append(f"{count} ")
        return header

    def _show_graph(self, history: FlowHistory) -> None:
        latest = history.runs[-1].tasks if history.runs else {}
        nodes = [Node(slug, slug, latest[slug].state if slug in latest else "Pending")
                 for slug in history.tasks]  # fmt: skip
        lines = render_dag(nodes, list(history.edges), color=color_enabled())
        self.query_one("#dag", Static).update(
            Text("\n").join(lines) if lines else plain("(no tasks recorded yet)")
        )

    def on_tabbed_content_tab_activated(
        self, event: TabbedContent.TabActivated
    ) -> None:
        pane = event.pane.id
        if pane in self.FOCUS:
            self.query_one(self.FOCUS[pane]).focus()

    def on_history_grid_moved(self, _: HistoryGrid.Moved) -> None:
        run, slug = self.query_one("#grid", HistoryGrid).selected()
        self.query_one("#cell", Static).update(
            _describe(run, slug, self.durable.clock()) if run else plain("")
        )

    def on_history_grid_opened(self, event: HistoryGrid.Opened) -> None:
        from tui.screens.run_detail import RunDetailScreen
        from tui.screens.task_run import TaskRunScreen

        if event.task_run_id is None:
            self.app.push_screen(RunDetailScreen(event.run_id))
        else:
            self.app.push_screen(TaskRunScreen(event.run_id, event.task_run_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        from tui.screens.run_detail import RunDetailScreen

        if event.data_table.id == "flow-runs" and event.row_key.value is not None:
            self.app.push_screen(RunDetailScreen(event.row_key.value))

    def selected_run(self) -> HistoryRun | None:
        """The run under the grid's cursor, or the Runs tab's cursor on that tab."""
        if self.history is None:
            return None
        if self.query_one("#tabs", TabbedContent).active == "runs-tab":
            key = self.query_one("#flow-runs", VimTable).selected_key
            return next((r for r in self.history.runs if r.run.id == key), None)
        return self.query_one("#grid", HistoryGrid).selected()[0]

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def action_tab_step(self, step: int) -> None:
        content = self.query_one("#tabs", TabbedContent)
        index = self.TABS.index(content.active) if content.active in self.TABS else 0
        content.active = self.TABS[(index + step) % len(self.TABS)]

    def action_trigger(self) -> None:
        self.durable.confirm_trigger(self.flow_name)

    def action_trigger_form(self) -> None:
        version = self.history.version if self.history is not None else None
        self.durable.open_trigger_form(self.flow_name, version)

    def action_pause(self) -> None:
        if self.history is not None and self.history.schedule:
            self.durable.confirm_pause(self.flow_name, pause=not self.history.paused)

    def action_restart(self) -> None:
        run = self.selected_run()
        if run is not None:
            self.durable.confirm_restart(run.run)


def _describe(run: HistoryRun, slug: str | None, now: float) -> Text:
    """The line under the grid: the selected run, or its task run's state and error."""
    line = plain(f"run {run.run.id} · started {clock(run.run.started_at)} · ")
    if slug is None:
        line.append_text(state_cell(run.run.state))
        line.append(f" · {duration(took(run.run.started_at, run.run.ended_at, now))}")
        return line
    cell: TaskCell | None = run.tasks.get(slug)
    line.append(clean(f"{slug} · "))
    if cell is None:
        line.append("not in this run's flow version")
        return line
    line.append_text(state_cell(cell.state))
    line.append(f" · attempts {cell.attempts} · "
                f"{duration(took(cell.started_at, cell.ended_at, now))}")  # fmt: skip
    if cell.message:
        line.append(clean(f" · {cell.message}"))
    return line


def _durations(history: FlowHistory, now: float) -> list[tuple[str, list[Cell]]]:
    """One row per task (after one for the runs): a sparkline, p50, p95 and the last."""
    runs = history.runs
    series: list[tuple[str, list[float | None], str | None]] = [(RUN_ROW, [
        took(r.run.started_at, r.run.ended_at, now) for r in runs
    ], runs[-1].run.state if runs else None)]  # fmt: skip
    for slug in history.tasks:
        cells = [r.tasks.get(slug) for r in runs]
        values = [took(c.started_at, c.ended_at, now) if c else None for c in cells]
        latest = next((c.state for c in reversed(cells) if c is not None), None)
        series.append((slug, values, latest))
    rows: list[tuple[str, list[Cell]]] = []
    for key, values, state in series:
        color = style_of(state).color if state and color_enabled() else ""
        spark = Text(sparkline(values, width=SPARK_WIDTH), style=color)
        last = next((v for v in reversed(values) if v is not None), None)
        rows.append((key, [plain(key), spark, plain(duration(percentile(values, 50))),
                           plain(duration(percentile(values, 95))),
                           plain(duration(last) if last is not None else DASH)]))  # fmt: skip
    return rows
