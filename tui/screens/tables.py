"""Areas that are one table: Flows, Schedules, Workers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from tui.render.palette import state_cell
from tui.render.timefmt import clock, relative
from tui.screens.base import TableScreen, plain
from tui.widgets import Cell


class FlowsScreen(TableScreen):
    """Area 1: flows with their schedule, next tick and recent runs; enter opens one,
    t runs one now."""

    TITLE = "Flows"
    COLUMNS = [("flow", "Flow"), ("version", "Version"), ("schedule", "Schedule"),
               ("next", "Next run"), ("history", "Last runs"), ("running", "Running")]  # fmt: skip
    BINDINGS = [Binding("t", "trigger", "Run now", id="flow.trigger"),
                Binding("T", "trigger_form", "Custom run", id="flow.trigger_form"),
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

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            from tui.screens.flow_detail import FlowDetailScreen

            self.app.push_screen(FlowDetailScreen(event.row_key.value))

    def action_trigger(self) -> None:
        flow = self.selected()
        if flow is not None:
            self.durable.confirm_trigger(flow.name)

    def action_trigger_form(self) -> None:
        flow = self.selected()
        if flow is not None:
            self.durable.open_trigger_form(flow.name, flow.version)

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
        return scheduled_rows(items, now)


def scheduled_rows(items: Sequence[Any], now: float) -> list[tuple[str, list[Cell]]]:
    """Rows of scheduled runs (`ScheduledRow`s) for the `SchedulesScreen.COLUMNS`."""
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
