"""The polling screen every area builds on: it polls only while active, through a
thread worker that reads only when the database changed (`PRAGMA data_version`), and
applies immutable snapshots on the UI thread. Everything from the database is text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import (
    Footer,
    Header,
    Input,
    Static,
)
from textual.worker import get_current_worker

from durable.store.browse import FilterError
from durable.text import clean
from tui.widgets import Cell, VimTable

if TYPE_CHECKING:
    from tui.app import DurableApp


ACTIVE = frozenset({"Pending", "Scheduled", "Running", "Retrying", "Cancelling"})
MUTATING = frozenset({"cancel_run", "trigger", "trigger_form", "pause", "restart",
                      "approve"})  # fmt: skip
"""Actions hidden and refused in --read-only mode."""
COUNTS_WINDOW = 3_600.0
"""The header counts the runs that failed in this many seconds (the "failed(1h)")."""


def plain(value: object) -> Text:
    """Text that is never read as markup, its control characters (escape sequences from
    the database) shown as U+FFFD rather than sent to the terminal."""
    return Text(clean(value))


class Loaded(Message):
    """A poll's result, posted from the worker thread to the UI thread."""

    def __init__(
        self, data: Any, *, error: Exception | None = None, counts: Any = None
    ) -> None:
        super().__init__()
        self.data, self.error = data, error
        self.counts = counts
        """The header's run counts, read when the screen read (None: not read)."""


class PollingScreen(Screen[None]):
    """A screen that polls the read model while it is active."""

    def __init__(self) -> None:
        super().__init__()
        self._timer: Timer | None = None
        self._every = 0.0
        """The interval `_timer` polls at."""
        self._force = True

    @property
    def durable(self) -> DurableApp:
        from tui.app import DurableApp

        assert isinstance(self.app, DurableApp)
        return self.app

    def on_mount(self) -> None:
        # The header (docked top) shows the app's badges: sub_title, set by `_badge`.
        self.mount(Header(icon="≡"), before=0)
        self._every = self.durable.refresh_every
        self._timer = self.set_interval(self._every, self.poll)
        self.poll()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Read-only: mutating actions are hidden and refused (None would only dim them).
        return not (action in MUTATING and self.durable.read_only)

    def on_screen_suspend(self) -> None:
        if self._timer is not None:
            self._timer.pause()

    def on_screen_resume(self) -> None:
        self._force = True
        self.reschedule()
        if self._timer is not None:
            self._timer.resume()
        self.poll()

    def reschedule(self) -> None:
        """Poll at the app's refresh interval if it changed (the palette sets it)."""
        if self._timer is not None and self._every != self.durable.refresh_every:
            self._timer.stop()
            self._every = self.durable.refresh_every
            self._timer = self.set_interval(self._every, self.poll)

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
            data, counts = self.durable.read(lambda model: self._read(model, force))
        except Exception as exc:  # noqa: BLE001 (a locked or missing db: show, retry)
            self.post_message(Loaded(None, error=exc))
            return
        if get_current_worker().is_cancelled:
            self._force = True  # what it read is dropped: the next poll reads again
            return
        self.post_message(Loaded(data, counts=counts))

    def _read(self, model: Any, force: bool) -> tuple[Any, Any]:
        data = self.load(model, force)
        # The screen read only because the database changed (or was told to): the
        # header's counts are read then, never on an idle poll.
        counts = None
        if data is not None or force:
            counts = model.counts(self.durable.clock() - COUNTS_WINDOW)
        return data, counts

    def load(self, model: Any, force: bool) -> Any:
        """Read what the screen shows (worker thread); None when nothing changed."""
        raise NotImplementedError

    @on(Loaded)
    def _loaded(self, message: Loaded) -> None:
        if message.error is not None:
            self.durable.db_error(message.error)
            return
        self.durable.db_ok(message.counts)
        if message.data is not None:
            self.apply(message.data)

    def apply(self, data: Any) -> None:
        """Show a snapshot (UI thread)."""
        raise NotImplementedError


class FilteredScreen(PollingScreen):
    """A polling screen with a `/` filter prompt over its table (`field:value` words).

    `parse` turns the prompt's text into the filter the poll reads (raising
    FilterError with a message for the user); `esc` hides the prompt, then clears the
    filter, then (with nothing to clear) goes back.
    """

    def __init__(self, table: str, parse: Callable[[str], Any], empty: Any) -> None:
        super().__init__()
        self._table, self._parse = table, parse
        self.filter = empty
        self.filter_text = ""

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.remove_class("hidden")
        box.value = self.filter_text
        box.focus()

    @on(Input.Submitted, "#filter")
    def _submitted(self, event: Input.Submitted) -> None:
        if self.set_filter(event.value):
            event.input.add_class("hidden")
            self.query_one(f"#{self._table}", VimTable).focus()

    def set_filter(self, text: str) -> bool:
        """Apply a filter (False, with a toast, if it does not parse)."""
        try:
            self.filter = self._parse(text)
        except FilterError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return False
        self.filter_text = text.strip()
        self.filter_changed()
        self.refresh_now()
        return True

    def filter_changed(self) -> None:
        """Called when a new filter is set, before the poll that reads it."""

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if not box.has_class("hidden"):
            box.add_class("hidden")
            self.query_one(f"#{self._table}", VimTable).focus()
        if self.filter_text:
            self.set_filter("")


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
