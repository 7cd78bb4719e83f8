"""The app's actions (cancel, trigger, restart, approve, pause a schedule): each asks in a
modal that names the target and previews the effect, then calls `durable.control`, the
API the CLI uses, in a thread worker on a store opened for that action alone. The control
API records each one in the audit log, with the OS user as the actor.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
from textual import work
from textual.app import App

from durable import control
from durable.errors import DurableError
from durable.restarts import RESTARTABLE
from durable.store import Store
from durable.store.control import CancelOutcome
from tui.modals import Mode, RestartChoice, RestartModal, TriggerForm
from tui.widgets import ConfirmModal

if TYPE_CHECKING:
    from durable.store.browse import ReadModel, RunDetail, RunRow

T = TypeVar("T")
NO_WORKER = "no worker is running: start one with durable worker"


def run_control(db: Path, action: Callable[[Store], Awaitable[T]]) -> T:
    """Run one control call on a store opened for it alone (blocking: call it in a
    thread). DurableErrors propagate."""

    async def run() -> T:
        store = await Store.open(db)
        try:
            return await action(store)
        finally:
            await store.close()

    return anyio.run(run)


class Actions(App[None]):
    """The mutating verbs of `DurableApp`; all refused in --read-only mode."""

    db: Path
    read_only: bool

    if TYPE_CHECKING:

        def read(self, query: Callable[[ReadModel], T]) -> T:
            """DurableApp's: run a read on the model (any thread; one at a time)."""

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
                actor = control.current_user()
                self._act(lambda store: control.cancel(store, run_id, actor=actor),
                          _cancelled)  # fmt: skip

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
                actor = control.current_user()
                self._act(lambda store: control.trigger(store, flow_name, {},
                                                        actor=actor),
                          lambda t: f"run {t.run.id} created")  # fmt: skip

        self.push_screen(modal, done)

    def open_trigger_form(self, flow_name: str, version: int | None = None) -> None:
        """Read the flow's parameters, then open the custom-run form (T).

        The run is of the latest registered version, as with `durable trigger`; the
        title shows the flow's latest version (`version` is read again, not trusted)."""
        if self.read_only:
            return

        def read(model: ReadModel) -> tuple[Any, Any]:
            flow = next((f for f in model.flows() if f.name == flow_name), None)
            return flow, model.parameters(flow_name)

        self._read_then(read, lambda found: self._show_trigger_form(flow_name, *found))

    def _show_trigger_form(self, flow_name: str, flow: Any, params: Any) -> None:
        if flow is None or not flow.registered:
            self.notify(f"Flow {flow_name!r} is not registered, so no worker can run "
                        "it; register it with: durable register FILE",
                        severity="warning", markup=False)  # fmt: skip
            return

        def submit(values: dict[str, Any]) -> Any:  # the form's thread
            actor = control.current_user()
            return run_control(self.db, lambda store: control.trigger(
                store, flow_name, values, actor=actor))  # fmt: skip

        def done(triggered: Any) -> None:
            if triggered is not None:
                self._notify_outcome(f"run {triggered.run.id} created", triggered)

        form = TriggerForm(flow_name, flow.version, params, submit)
        self.push_screen(form, done)

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
            actor = control.current_user()
            self._act(lambda store: act(store, flow_name, actor=actor),
                      lambda _: f"schedule of {flow_name} {verb.lower()}d")  # fmt: skip

        self.push_screen(modal, done)

    def confirm_restart(
        self,
        run: RunRow,
        *,
        detail: RunDetail | None = None,
        selected: str | None = None,
        mode: Mode = "failure",
    ) -> None:
        """Open the Restart modal on a finished run (R), reading its task runs first
        unless `detail` has them; `selected` is offered as "from the selected task",
        and `mode` is the option chosen at first ("from_task" on a task run)."""
        if self.read_only:
            return
        if run.state not in RESTARTABLE:
            self.notify(f"Run {run.id} is {run.state}: only a "
                        f"{'/'.join(sorted(RESTARTABLE))} run can be retried",
                        severity="warning", markup=False)  # fmt: skip
            return
        if detail is not None:
            self._show_restart(detail, selected, mode)
        else:
            self._read_then(lambda model: model.run(run.id),
                            lambda found: self._show_restart(found, selected, mode))  # fmt: skip

    def _show_restart(
        self, detail: RunDetail | None, selected: str | None, mode: Mode
    ) -> None:
        if detail is None:
            self.notify("That run is gone", severity="error", markup=False)
            return
        run = detail.run

        def done(choice: RestartChoice | None) -> None:
            if choice is None:
                return
            actor, run_id = control.current_user(), run.id
            if choice.mode == "rerun":
                self._act(lambda store: control.rerun(store, run_id, actor=actor),
                          lambda t: f"run {t.run.id} created: run {run_id} again, "
                                    "with the same parameters")  # fmt: skip
                return
            what = ("retry from failure" if choice.from_tasks is None else
                    f"run again from {', '.join(choice.from_tasks)}")  # fmt: skip
            self._act(lambda store: control.restart(store, run_id, actor=actor,
                                                    from_tasks=choice.from_tasks),
                      lambda r: f"run {r.run_id} queued to {what}")  # fmt: skip

        modal = RestartModal(
            run, detail.tasks, detail.edges, selected=selected, mode=mode
        )
        self.push_screen(modal, done)

    def confirm_approve(self, run_id: str, flow_name: str, task_ref: str) -> None:
        """Ask, then approve a Paused task run (a), so a worker runs it."""
        if self.read_only:
            return
        modal = ConfirmModal(f"Approve task {task_ref} of run {run_id}?",
                             [f"{run_id} · {flow_name} · {task_ref} · Paused"],
                             "The task runs when a worker picks the run up again; the "
                             "rest of the run carries on from its checkpoints.")  # fmt: skip

        def done(confirmed: bool | None) -> None:
            if confirmed:
                actor = control.current_user()
                self._act(lambda store: control.approve(store, run_id, task_ref,
                                                        actor=actor),
                          lambda r: f"{task_ref} of run {r.run_id} approved")  # fmt: skip

        self.push_screen(modal, done)

    @work(thread=True, exit_on_error=False, group="actions")
    def _read_then(
        self, query: Callable[[ReadModel], T], show: Callable[[T], None]
    ) -> None:
        """Read on the model in a thread, then show what it read on the UI thread."""
        try:
            data = self.read(query)
        except Exception as exc:  # noqa: BLE001 (a locked or old database: say so)
            self.notify(f"Cannot read the database: {exc}", severity="error",
                        markup=False)  # fmt: skip
            return
        self.call_from_thread(show, data)

    @work(thread=True, exit_on_error=False, group="actions")
    def _act(
        self, action: Callable[[Store], Awaitable[T]], describe: Callable[[T], str]
    ) -> None:
        try:
            outcome = run_control(self.db, action)
        except DurableError as exc:
            self.notify(str(exc), severity="error", markup=False)  # thread-safe
            return
        self._notify_outcome(describe(outcome), outcome)

    def _notify_outcome(self, message: str, outcome: object) -> None:
        """Toast what happened, warning when no worker will pick it up."""
        if getattr(outcome, "served", True) is False:
            self.notify(f"{message}; {NO_WORKER}", severity="warning", markup=False)
        else:
            self.notify(message, markup=False)


def _cancelled(outcome: Any) -> str:
    run_id, result = outcome
    if result.outcome is CancelOutcome.REQUESTED:
        return f"run {run_id}: asked to stop"
    if result.outcome is CancelOutcome.CANCELLED:
        return f"run {run_id} cancelled"
    return f"run {run_id} has already ended ({result.found})"
