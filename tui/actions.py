"""The app's actions (cancel, trigger, pause a schedule): each asks in a modal that names
the target and previews the effect, then calls `durable.control`, the API the CLI uses,
in a thread worker on a store opened for that action alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
from textual import work
from textual.app import App

from durable import control
from durable.errors import DurableError
from durable.store import Store
from durable.store.control import CancelOutcome
from tui.widgets import ConfirmModal

T = TypeVar("T")


class Actions(App[None]):
    """The mutating verbs of `DurableApp`; all refused in --read-only mode."""

    db: Path
    read_only: bool

    def confirm_cancel(self, run_id: str, flow_name: str, state: str) -> None:
        """Ask, then cancel a run (X)."""
        if self.read_only:
            return
        effect = ("It is cancelled at once if nothing runs it; a running run stops at "
                  "its next task boundary and ends Cancelled.")  # fmt: skip
        target = f"{run_id} · {flow_name} · {state}"
        modal = ConfirmModal(f"Cancel run {run_id}?", [target], effect)

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._act(lambda store: control.cancel(store, run_id), _cancelled)

        self.push_screen(modal, done)

    def confirm_trigger(self, flow_name: str) -> None:
        """Ask, then run a flow now with its default parameters (t)."""
        if self.read_only:
            return
        modal = ConfirmModal(f"Run flow {flow_name} now?", [flow_name],
                             "A run with the default parameters is recorded; a worker "
                             "starts it.")  # fmt: skip

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._act(lambda store: control.trigger(store, flow_name, {}),
                          lambda t: f"run {t.run.id} created" + (
                              "" if t.served else " (no worker is running)"))  # fmt: skip

        self.push_screen(modal, done)

    def confirm_pause(self, flow_name: str, *, pause: bool) -> None:
        """Ask, then pause or resume a flow's schedule (P)."""
        if self.read_only:
            return
        verb = "Pause" if pause else "Resume"
        effect = ("Its ticks are recorded as skipped until it is resumed." if pause else
                  "Ticks missed while paused stay skipped; the next ones run.")  # fmt: skip
        modal = ConfirmModal(
            f"{verb} the schedule of {flow_name}?", [flow_name], effect
        )

        def done(confirmed: bool | None) -> None:
            if not confirmed:
                return
            act = control.pause_schedule if pause else control.resume_schedule
            self._act(lambda store: act(store, flow_name),
                      lambda _: f"schedule of {flow_name} {verb.lower()}d")  # fmt: skip

        self.push_screen(modal, done)

    @work(thread=True, exit_on_error=False, group="actions")
    def _act(
        self, action: Callable[[Store], Awaitable[T]], describe: Callable[[T], str]
    ) -> None:
        async def run() -> T:
            store = await Store.open(self.db)
            try:
                return await action(store)
            finally:
                await store.close()

        try:
            outcome = anyio.run(run)
        except DurableError as exc:
            self.notify(str(exc), severity="error", markup=False)  # thread-safe
            return
        self.notify(describe(outcome), markup=False)


def _cancelled(outcome: Any) -> str:
    run_id, result = outcome
    if result.outcome is CancelOutcome.REQUESTED:
        return f"run {run_id}: asked to stop"
    if result.outcome is CancelOutcome.CANCELLED:
        return f"run {run_id} cancelled"
    return f"run {run_id} has already ended ({result.found})"
