"""The screens: Runs (the default area), Run detail, Flows, Schedules and Workers.

Each screen polls only while it is active: a thread worker asks the read model whether
the database changed (`PRAGMA data_version`) and reads only then, and posts an immutable
snapshot that the UI thread applies. Everything from the database is shown as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Static,
    TabbedContent,
    TabPane,
)
from textual.worker import get_current_worker

from durable.store.browse import FilterError, RunDetail, RunFilter, RunRow, parse_filter
from tui.render.dag import Node, neighbours, render_dag
from tui.render.gantt import Span, gantt_bar, gantt_ruler
from tui.render.palette import color_enabled, glyph, state_cell
from tui.render.timefmt import clock, duration, relative
from tui.widgets import Cell, FollowLog, VimTable

if TYPE_CHECKING:
    from tui.app import DurableApp

ACTIVE = frozenset({"Pending", "Scheduled", "Running", "Retrying", "Cancelling"})
MUTATING = frozenset({"cancel_run", "trigger", "pause"})
"""Actions hidden and refused in --read-only mode."""


def plain(value: object) -> Text:
    """Text that is never read as markup."""
    return Text("" if value is None else str(value))


class Loaded(Message):
    """A poll's result, posted from the worker thread to the UI thread."""

    def __init__(self, data: Any, *, error: Exception | None = None) -> None:
        super().__init__()
        self.data, self.error = data, error


class PollingScreen(Screen[None]):
    """A screen that polls the read model while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self._force = True

    @property
    def durable(self) -> DurableApp:
        from tui.app import DurableApp

        assert isinstance(self.app, DurableApp)
        return self.app

    def on_mount(self) -> None:
        self._timer = self.set_interval(self.durable.refresh_every, self.poll)
        self.poll()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MUTATING and self.durable.read_only:
            return None  # hidden from the footer, and refused
        return True

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        self._force = True
        if self._timer is not None:
            self._timer.resume()
        self.poll()

    def refresh_now(self) -> None:
        """Read again now, even if the database did not change (ctrl+r)."""
        self._force = True
        self.poll()

    def poll(self) -> None:
        if self.durable.live or self._force:
            force, self._force = self._force, False
            self._poll(force)

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def _poll(self, force: bool) -> None:
        try:
            data = self.durable.read(lambda model: self.load(model, force))
        except Exception as exc:  # noqa: BLE001 (a locked or missing db: show, retry)
            self.post_message(Loaded(None, error=exc))
            return
        if get_current_worker().is_cancelled:
            self._force = True  # what it read is dropped: the next poll reads again
            return
        self.post_message(Loaded(data))

    def load(self, model: Any, force: bool) -> Any:
        """Read what the screen shows (worker thread); None when nothing changed."""
        raise NotImplementedError

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.error is not None:
            self.durable.db_error(message.error)
            return
        self.durable.db_ok()
        if message.data is not None:
            self.apply(message.data)

    def apply(self, data: Any) -> None:
        """Show a snapshot (UI thread)."""
        raise NotImplementedError


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


class RunsScreen(PollingScreen):
    """Area 2 (default): every run, newest first; / filters, enter opens one."""

    AUTO_FOCUS = "#runs"
    BINDINGS = [
        Binding("slash", "filter", "Filter"),
        Binding("e", "errors", "Errors only"),
        Binding("X", "cancel_run", "Cancel", id="run.cancel"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.filter = RunFilter()
        self.filter_text = ""
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
            self.app.push_screen(RunDetailScreen(event.row_key.value))

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.value = self.filter_text
        box.focus()

    def action_errors(self) -> None:
        self.set_filter("state:failed|timedout|triggerfailed")

    @on(Input.Submitted, "#filter")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.set_filter(event.value):
            event.input.add_class("hidden")
            self.query_one("#runs", VimTable).focus()

    def set_filter(self, text: str) -> bool:
        try:
            self.filter = parse_filter(text, now=self.durable.clock())
        except FilterError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        self.filter_text = text.strip()
        self.refresh_now()
        return True

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.has_class("hidden"):
            box.add_class("hidden")
            self.query_one("#runs", VimTable).focus()
        if self.filter_text:
            self.set_filter("")

    def action_cancel_run(self) -> None:
        key = self.query_one("#runs", VimTable).selected_key
        run = next((r for r in self.runs if r.id == key), None)
        if run is not None:
            self.durable.confirm_cancel(run.id, run.flow_name, run.state)


# Run detail ----------------------------------------------------------------------------
TASK_COLUMNS = [("state", "St"), ("task", "Task"), ("tries", "Tries"), ("start", "Start"),
                ("duration", "Dur"), ("upstream", "← Upstream"), ("gantt", "")]  # fmt: skip
GANTT_WIDTH = 40


class RunDetailScreen(PollingScreen):
    """One run: its tasks with a Gantt column, its graph, its logs and its events."""

    AUTO_FOCUS = "#tasks"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("X", "cancel_run", "Cancel", id="run.cancel"),
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
            with TabPane("Events", id="events"):
                yield VimTable([("time", "Time"), ("task", "Task"), ("state", "State"),
                                ("message", "Message")], id="event-table")  # fmt: skip
        yield Footer()

    def load(self, model: Any, force: bool) -> Any:
        if not model.changed() and not force:
            return None
        detail = model.run(self.run_id)
        logs = model.logs(self.run_id, after_id=self._log_after)
        return detail, logs

    def apply(self, data: Any) -> None:
        detail, logs = data
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
            self.notify(f"run {detail.run.id} {glyph(detail.run.state)} {detail.run.state}",
                        markup=False)  # fmt: skip

    def show_detail(self, detail: RunDetail) -> None:
        now, run = self.durable.clock(), detail.run
        end = run.ended_at if run.ended_at is not None else now
        header = Text()
        header.append(f"run {run.id} · {run.flow_name} v{run.flow_version} · ")
        header.append_text(state_cell(run.state))
        if run.started_at is not None:
            header.append(f" · started {clock(run.started_at)} "
                          f"({relative(run.started_at, now)}) · "
                          f"{duration(end - run.started_at)}")  # fmt: skip
        if run.trigger:
            header.append(f" · {TRIGGERS.get(run.trigger, run.trigger)}")
        failed = [t.slug for t in detail.tasks if t.state in ("Failed", "TimedOut")]
        if failed:
            header.append(f"\n✗ {len(failed)} failed: {', '.join(failed)}")
        self.query_one("#header", Static).update(header)
        starts = [t.started_at for t in detail.tasks if t.started_at is not None]
        window = (min(starts, default=run.started_at or now), end)
        table = self.query_one("#tasks", VimTable)
        table.border_title = gantt_ruler(window, GANTT_WIDTH)
        table.show([(t.task_run_id, _task_cells(t, window, now)) for t in detail.tasks])
        self._show_graph(detail)
        self.query_one("#event-table", VimTable).show([
            (str(e.id), [plain(clock(e.timestamp)), plain(e.task_slug or "(flow run)"),
                         state_cell(e.name), plain(e.message or "")])
            for e in detail.events
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

    def tick(self) -> None:
        if self.detail is not None and self.detail.run.state in ACTIVE:
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


def _task_cells(task: Any, window: tuple[float, float], now: float) -> list[Cell]:
    end = task.ended_at if task.ended_at is not None else now
    took = duration(end - task.started_at) if task.started_at is not None else "—"
    name = task.slug if task.map_index < 0 else f"{task.slug}[{task.map_index}]"
    spans = [Span(s.start, s.end, s.state) for s in task.spans]
    return [
        state_cell(task.state, word=False), plain(name), plain(task.attempts),
        plain(clock(task.started_at)), plain(took),
        plain(", ".join(task.upstream) or "—"),
        gantt_bar(spans, window, GANTT_WIDTH, now=now, color=color_enabled()),
    ]  # fmt: skip


def _log_line(line: Any) -> str:
    where = line.task_slug or "flow"
    if line.task_slug and line.map_index >= 0:
        where += f"[{line.map_index}]"
    level = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}.get(
        line.level, str(line.level)
    )
    return f"{clock(line.timestamp)} {where} {level} {line.message}"


# Flows, Schedules, Workers ----------------------------------------------------------------
class TableScreen(PollingScreen):
    """An area that is one table of what the read model lists."""

    AUTO_FOCUS = "#table"
    COLUMNS: Sequence[tuple[str, str]] = ()
    TITLE = ""

    def __init__(self) -> None:
        super().__init__()
        self.items: list[Any] = []

    def compose(self) -> ComposeResult:
        yield Static(plain(self.TITLE), id="status")
        yield VimTable(self.COLUMNS, id="table")
        yield Footer()

    def rows(self, items: Sequence[Any], now: float) -> list[tuple[str, list[Cell]]]:
        raise NotImplementedError

    def apply(self, data: Any) -> None:
        self.items = list(data)
        table = self.query_one("#table", VimTable)
        table.show(self.rows(self.items, self.durable.clock()))
        table.border_title = f"{self.TITLE} · {len(self.items)}"

    def selected(self) -> Any:
        key = self.query_one("#table", VimTable).selected_key
        return next((item for item in self.items if self.key_of(item) == key), None)

    def key_of(self, item: Any) -> str:
        return str(item.name)


class FlowsScreen(TableScreen):
    """Area 1: flows with their schedule, next tick and recent runs; t runs one now."""

    TITLE = "Flows"
    COLUMNS = [("flow", "Flow"), ("version", "Version"), ("schedule", "Schedule"),
               ("next", "Next run"), ("history", "Last runs"), ("running", "Running")]  # fmt: skip
    BINDINGS = [Binding("t", "trigger", "Run now", id="flow.trigger"),
                Binding("P", "pause", "Pause/resume schedule", id="flow.pause")]  # fmt: skip

    def load(self, model: Any, force: bool) -> Any:
        return model.flows() if model.changed() or force else None

    def rows(self, items: Sequence[Any], now: float) -> list[tuple[str, list[Cell]]]:
        out: list[tuple[str, list[Cell]]] = []
        for flow in items:
            history = Text()
            for state in flow.last_runs:
                history.append_text(state_cell(state, word=False))
            schedule = (flow.schedule or "—") + (" ⏸" if flow.paused else "")
            out.append((flow.name, [plain(flow.name), plain(f"v{flow.version}"),
                                    plain(schedule), plain(relative(flow.next_tick, now)),
                                    history, plain(flow.running)]))  # fmt: skip
        return out

    def action_trigger(self) -> None:
        flow = self.selected()
        if flow is not None:
            self.durable.confirm_trigger(flow.name)

    def action_pause(self) -> None:
        flow = self.selected()
        if flow is not None and flow.schedule:
            self.durable.confirm_pause(flow.name, pause=not flow.paused)


class SchedulesScreen(TableScreen):
    """Area 3: waiting and recent scheduled runs (ticks, triggers, backfills)."""

    TITLE = "Scheduled runs"
    COLUMNS = [("status", "Status"), ("when", "Scheduled for"), ("flow", "Flow"),
               ("kind", "Kind"), ("worker", "Worker"), ("message", "Message")]  # fmt: skip

    def load(self, model: Any, force: bool) -> Any:
        return model.scheduled() if model.changed() or force else None

    def key_of(self, item: Any) -> str:
        return str(item.id)

    def rows(self, items: Sequence[Any], now: float) -> list[tuple[str, list[Cell]]]:
        return [(s.id, [state_cell(s.status), plain(f"{clock(s.scheduled_for)} "
                        f"({relative(s.scheduled_for, now)})"), plain(s.flow_name),
                        plain(s.kind), plain(s.worker or "—"), plain(s.message or "")])
                for s in items]  # fmt: skip


class WorkersScreen(TableScreen):
    """Area 4: workers with their health from the heartbeat's age."""

    TITLE = "Workers"
    COLUMNS = [("worker", "Worker"), ("health", "Health"), ("seen", "Last heartbeat"),
               ("slots", "Slots"), ("started", "Started")]  # fmt: skip

    def load(self, model: Any, force: bool) -> Any:
        return model.workers() if model.changed() or force else None

    def rows(self, items: Sequence[Any], now: float) -> list[tuple[str, list[Cell]]]:
        out: list[tuple[str, list[Cell]]] = []
        for w in items:
            age = now - w.heartbeat_at
            health = ("○ stopped" if w.stopped_at is not None else "● online" if age < 3
                      else "◐ stale" if age < 10 else "○ offline")  # fmt: skip
            out.append((w.name, [plain(f"{w.name} (pid {w.pid})"), plain(health),
                                 plain(relative(w.heartbeat_at, now)),
                                 plain(f"{w.running}/{w.concurrency}"),
                                 plain(relative(w.started_at, now))]))  # fmt: skip
        return out
