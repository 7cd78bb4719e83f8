"""Run detail: a run's tasks with their Gantt bars, its graph, logs and events."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import (
    DataTable,
    Footer,
    Static,
    TabbedContent,
    TabPane,
)

from durable.store.browse import RunDetail
from durable.text import clean
from tui.render.dag import Node, neighbours, render_dag
from tui.render.gantt import Span, gantt_bar, gantt_ruler
from tui.render.palette import color_enabled, glyph, state_cell
from tui.render.timefmt import clock, duration, relative
from tui.screens.base import ACTIVE, PollingScreen, plain
from tui.screens.runs import TRIGGERS
from tui.widgets import FollowLog, VimTable

TASK_COLUMNS = [("state", "St"), ("task", "Task"), ("tries", "Tries"), ("start", "Start"),
                ("duration", "Dur"), ("upstream", "← Upstream"), ("gantt", "")]  # fmt: skip
GANTT_MIN = 16
"""The narrowest Gantt column; it takes the width the other columns leave."""


class RunDetailScreen(PollingScreen):
    """One run: its tasks with a Gantt column, its graph, its logs and its events."""

    AUTO_FOCUS = "#tasks"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("X", "cancel_run", "Cancel", id="run.cancel"),
        Binding("R", "restart", "Retry…", id="run.restart"),
        Binding("a", "approve", "Approve", id="task.approve"),
        Binding("l", "tab('logs')", "Logs"),
        Binding("d", "tab('graph')", "Graph"),
        Binding("left_square_bracket", "tab_step(-1)", "Prev tab", show=False),
        Binding("right_square_bracket", "tab_step(1)", "Next tab", show=False),
    ]

    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id
        self.detail: RunDetail | None = None
        self._log_after = 0

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        with TabbedContent(id="tabs", initial="tasks-tab"):
            with TabPane("Tasks", id="tasks-tab"):
                yield VimTable(TASK_COLUMNS, id="tasks")
                yield Static(id="neighbours")
            with TabPane("Graph", id="graph"):
                yield VerticalScroll(Static(id="dag"))
            with TabPane("Logs", id="logs"):
                yield FollowLog(id="log")
            with TabPane("Params/Result", id="params"):
                yield VerticalScroll(Static(id="parameters"))
                yield VimTable([("task", "Task"), ("serializer", "Stored as"),
                                ("size", "Size"), ("value", "Value")], id="results")  # fmt: skip
            with TabPane("Events", id="events"):
                yield VimTable([("time", "Time"), ("task", "Task"), ("state", "State"),
                                ("message", "Message")], id="event-table")  # fmt: skip
        yield Footer()

    def load(self, model: Any, force: bool) -> Any:
        if not model.changed() and not force:
            return None
        detail = model.run(self.run_id)
        logs = model.logs(self.run_id, after_id=self._log_after)
        return detail, logs, model.results(self.run_id)

    def apply(self, data: Any) -> None:
        detail, logs, results = data
        self._show_results(results)
        if detail is None:
            self.query_one("#header", Static).update(plain(f"No run {self.run_id}"))
            return
        finished_now = (
            self.detail is not None and self.detail.run.state in ACTIVE
            and detail.run.state not in ACTIVE
        )  # fmt: skip
        self.detail = detail
        self.show_detail(detail)
        if logs:
            self._log_after = logs[-1].id
            self.query_one("#log", FollowLog).append([_log_line(line) for line in logs])
        if finished_now:
            self.notify(clean(f"run {detail.run.id} {glyph(detail.run.state)} "
                              f"{detail.run.state}"), markup=False)  # fmt: skip

    def show_detail(self, detail: RunDetail) -> None:
        now, run = self.durable.clock(), detail.run
        end = run.ended_at if run.ended_at is not None else now
        header = plain(f"run {run.id} · {run.flow_name} v{run.flow_version} · ")
        header.append_text(state_cell(run.state))
        if run.started_at is not None:
            header.append(f" · started {clock(run.started_at)} "
                          f"({relative(run.started_at, now)}) · "
                          f"{duration(end - run.started_at)}")  # fmt: skip
        if run.trigger:
            header.append(clean(f" · {TRIGGERS.get(run.trigger, run.trigger)}"))
        failed = [t.slug for t in detail.tasks if t.state in ("Failed", "TimedOut")]
        if failed:
            header.append(clean(f"\n✗ {len(failed)} failed: {', '.join(failed)}"))
        self.query_one("#header", Static).update(header)
        starts = [t.started_at for t in detail.tasks if t.started_at is not None]
        window = (min(starts, default=run.started_at or now), end)
        table = self.query_one("#tasks", VimTable)
        rows = [(t, _task_cells(t, now)) for t in detail.tasks]
        width = _gantt_width([cells for _, cells in rows], table.size.width or 120)
        table.border_title = gantt_ruler(window, width)
        table.show([
            (t.task_run_id, [*cells, _gantt(t, window, now, width)]) for t, cells in rows
        ])  # fmt: skip
        self._show_graph(detail)
        self.query_one("#parameters", Static).update(
            plain(f"Parameters\n{detail.parameters}")
        )
        self.query_one("#event-table", VimTable).show([
            (str(e.id), [plain(clock(e.timestamp)), plain(e.task_slug or "(flow run)"),
                         state_cell(e.name), plain(e.message or "")])
            for e in detail.events
        ])  # fmt: skip

    def _show_results(self, results: Any) -> None:
        """Params/Result: what each task run stored, never unpickled (JSON previewed)."""
        self.query_one("#results", VimTable).show([
            (r.task_run_id, [
                plain(r.slug if r.map_index < 0 else f"{r.slug}[{r.map_index}]"),
                plain(r.serializer), plain(f"{r.size:,} B"),
                plain(r.preview if r.preview is not None else "(not shown: unpickling "
                      "runs code; load it in Python with durable)"),
            ]) for r in results
        ])  # fmt: skip

    def _show_graph(self, detail: RunDetail) -> None:
        by_slug: dict[str, str] = {}
        for task in detail.tasks:
            if task.map_index < 0:
                by_slug[task.slug] = task.state
        selected = self.query_one("#tasks", VimTable).selected_key
        current = next(
            (t.slug for t in detail.tasks if t.task_run_id == selected), None
        )
        nodes = [Node(slug, slug, state) for slug, state in by_slug.items()]
        lines = render_dag(nodes, list(detail.edges), selected=current,
                           color=color_enabled())  # fmt: skip
        self.query_one("#dag", Static).update(Text("\n").join(lines) if lines else
                                              plain("(no graph stored for this run)"))  # fmt: skip
        if current is not None:
            up, down = neighbours(list(detail.edges), current)
            self.query_one("#neighbours", Static).update(plain(
                f"{current} · ▲ upstream: {', '.join(up) or '—'}  "
                f"▼ downstream: {', '.join(down) or '—'}"))  # fmt: skip

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.detail is not None and event.data_table.id == "tasks":
            self._show_graph(self.detail)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "tasks" and event.row_key.value is not None:
            from tui.screens.task_run import TaskRunScreen

            self.app.push_screen(TaskRunScreen(self.run_id, event.row_key.value))

    def tick(self) -> None:
        if self.detail is not None and self.detail.run.state in ACTIVE:
            self.show_detail(self.detail)

    def on_resize(self) -> None:
        if self.detail is not None:  # the Gantt column takes the width there is
            self.show_detail(self.detail)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_tab(self, tab: str) -> None:
        self.query_one("#tabs", TabbedContent).active = tab

    def action_tab_step(self, step: int) -> None:
        tabs = ["tasks-tab", "graph", "logs", "events"]
        content = self.query_one("#tabs", TabbedContent)
        content.active = tabs[(tabs.index(content.active) + step) % len(tabs)]

    def action_cancel_run(self) -> None:
        if self.detail is not None:
            run = self.detail.run
            self.durable.confirm_cancel(run.id, run.flow_name, run.state)

    def selected_task(self) -> Any:
        """The task run under the Tasks table's cursor, if any."""
        key = self.query_one("#tasks", VimTable).selected_key
        tasks = self.detail.tasks if self.detail is not None else ()
        return next((t for t in tasks if t.task_run_id == key), None)

    def action_restart(self) -> None:
        if self.detail is not None:
            task = self.selected_task()
            self.durable.confirm_restart(self.detail.run, detail=self.detail,
                                         selected=task.slug if task else None)  # fmt: skip

    def action_approve(self) -> None:
        task = self.selected_task()
        if self.detail is None or task is None:
            return
        ref = task.slug if task.map_index < 0 else f"{task.slug}[{task.map_index}]"
        if task.state != "Paused":
            self.notify(f"Task {ref} is {task.state}: only a Paused task can be "
                        "approved", severity="warning", markup=False)  # fmt: skip
            return
        run = self.detail.run
        self.durable.confirm_approve(run.id, run.flow_name, ref)


def _task_cells(task: Any, now: float) -> list[Text]:
    """A task row's cells but its Gantt bar."""
    end = task.ended_at if task.ended_at is not None else now
    took = duration(end - task.started_at) if task.started_at is not None else "—"
    name = task.slug if task.map_index < 0 else f"{task.slug}[{task.map_index}]"
    return [
        state_cell(task.state, word=False), plain(name), plain(task.attempts),
        plain(clock(task.started_at)), plain(took),
        plain(", ".join(task.upstream) or "—"),
    ]  # fmt: skip


def _gantt(task: Any, window: tuple[float, float], now: float, width: int) -> Text:
    spans = [Span(s.start, s.end, s.state) for s in task.spans]
    return gantt_bar(spans, window, width, now=now, color=color_enabled())


def _gantt_width(rows: list[list[Text]], available: int) -> int:
    """What the Gantt column gets: the table's width less the other columns' (each as
    wide as its widest cell or header, plus DataTable's padding of one each side)."""
    used = sum(
        max(len(header), *(c.cell_len for c in column)) + 2
        for (_, header), column in zip(TASK_COLUMNS, zip(*rows, strict=True), strict=False)
    ) if rows else 0  # fmt: skip
    return max(GANTT_MIN, available - used - 4)


def _log_line(line: Any) -> str:
    where = line.task_slug or "flow"
    if line.task_slug and line.map_index >= 0:
        where += f"[{line.map_index}]"
    level = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}.get(
        line.level, str(line.level)
    )
    # A Log widget writes its lines as they are: escape sequences must not reach it.
    return clean(f"{clock(line.timestamp)} {where} {level} {line.message}")
