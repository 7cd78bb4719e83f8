"""`durable tui`: flows, runs, task runs, logs, schedules and workers, live, from the
terminal. Keyboard first (k9s/lazygit style), read-only unless an action is confirmed.

The app reads through one `ReadModel` (a read-only SQLite connection, guarded by a lock,
used from poll workers) and acts through `durable.control`, the API the CLI uses, on a
store it opens for the action alone. It never writes state rows itself.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from textual.app import App
from textual.binding import Binding
from textual.notifications import SeverityLevel

from durable.store.browse import ReadModel, RunCounts
from durable.text import clean
from durable.timesource import SYSTEM_TIME
from tui.actions import Actions
from tui.commands import Palette
from tui.screens import (
    EventsScreen,
    FlowsScreen,
    PollingScreen,
    RunsScreen,
    SchedulesScreen,
    WorkersScreen,
)

T = TypeVar("T")


class DurableApp(Actions, Palette, App[None]):
    """The terminal UI on one durable database."""

    TITLE = "durable"
    CSS = """
    #status, #header { height: auto; padding: 0 1; color: $text-muted; }
    #neighbours { height: 1; padding: 0 1; }
    .hidden { display: none; }
    VimTable { height: 1fr; }
    Header { dock: none; }  /* in the flow, above the screen's first line, not over it */
    TabbedContent { height: 1fr; }
    """
    MODES = {
        "flows": FlowsScreen,
        "runs": RunsScreen,
        "schedules": SchedulesScreen,
        "workers": WorkersScreen,
        "logs": EventsScreen,
    }
    DEFAULT_MODE = "runs"
    BINDINGS = [
        Binding("1", "area('flows')", "Flows", show=False, id="area.flows"),
        Binding("2", "area('runs')", "Runs", show=False, id="area.runs"),
        Binding("3", "area('schedules')", "Schedules", show=False, id="area.schedules"),
        Binding("4", "area('workers')", "Workers", show=False, id="area.workers"),
        Binding("5", "area('logs')", "Logs", show=False, id="area.logs"),
        Binding("p", "toggle_live", "Pause live", id="live.pause"),
        Binding("ctrl+r", "refresh_now", "Refresh", id="live.refresh"),
        Binding("question_mark", "help", "Keys", id="app.help"),
        Binding("q", "back_or_quit", "Back/Quit", id="nav.back_or_quit"),
    ]

    def __init__(
        self, db: str | Path, *, read_only: bool = False, refresh: float = 2.0,
        clock: Callable[[], float] = SYSTEM_TIME.timestamp,
    ) -> None:  # fmt: skip
        super().__init__()
        self.db = Path(db)
        self.read_only = read_only
        """Hide and refuse every action that changes something."""
        self.refresh_every = refresh
        """Seconds between two polls of the active screen."""
        self.clock = clock
        """The time source for durations and ages (fixed in tests)."""
        self.live = True
        self.model = ReadModel(self.db)
        self._lock = threading.Lock()
        self._error: str | None = None
        self.counts: RunCounts | None = None
        """Runs running now and failed in the last hour, from the latest read."""
        self.polled_at: float | None = None
        """When a poll last reached the database (the app's clock)."""

    def notify(
        self, message: str, *, title: str = "", severity: SeverityLevel = "information",
        timeout: float | None = None, markup: bool = True,
    ) -> None:  # fmt: skip
        """Toast `message`; its control characters (a run id or a state message from
        the database may hold escape sequences) are shown, never sent to the terminal."""
        super().notify(clean(message), title=clean(title), severity=severity,
                       timeout=timeout, markup=markup)  # fmt: skip

    def read(self, query: Callable[[ReadModel], T]) -> T:
        """Run a read on the model (any thread; one at a time)."""
        with self._lock:
            return query(self.model)

    def on_mount(self) -> None:
        self._badge()  # a first poll may have been applied already
        self.set_interval(1.0, self._tick)

    def on_unmount(self) -> None:
        with self._lock:
            self.model.close()

    def _tick(self) -> None:
        if self.polled_at is not None:
            self._badge()  # "last poll Xs ago" (no query)
        screen = self.screen
        tick = getattr(screen, "tick", None)
        if self.live and callable(tick):
            tick()

    # Header badges -------------------------------------------------------------------
    def db_error(self, exc: Exception) -> None:
        """Show that the database cannot be read now (the app stays up, retrying)."""
        self._error = f"DB error (retrying): {exc}"
        self._badge()

    def db_ok(self, counts: RunCounts | None = None) -> None:
        """A poll read the database; `counts` are the header's, when it read them."""
        self._error = None
        self.polled_at = self.clock()
        if counts is not None:
            self.counts = counts
        self._badge()

    def _badge(self) -> None:
        parts = [str(self.db)]
        if not self.live:
            parts.append("⏸ PAUSED")
        if self.read_only:
            parts.append("read-only")
        if self.counts is not None:
            parts.append(f"{self.counts.running} running · "
                         f"{self.counts.failed} failed(1h)")  # fmt: skip
        if self.polled_at is not None:
            ago = max(self.clock() - self.polled_at, 0.0)
            parts.append(f"last poll {ago:.0f}s ago")
        if self._error:
            parts.append(self._error)
        self.sub_title = " · ".join(parts)

    # Global actions --------------------------------------------------------------------
    async def action_area(self, mode: str) -> None:
        await self.switch_mode(mode)

    def action_toggle_live(self) -> None:
        self.live = not self.live
        self._badge()

    def action_refresh_now(self) -> None:
        if isinstance(self.screen, PollingScreen):
            self.screen.refresh_now()

    def action_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_back_or_quit(self) -> None:
        if len(self.screen_stack) > 1:
            self.pop_screen()
        else:
            self.exit()
