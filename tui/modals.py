"""The modals of the app's bigger verbs: the Restart modal ("Retry from failure", with a
dry-run preview of the task runs it resets), the trigger form (one input per parameter)
and the action log. They only ask and show; `tui.actions` calls the control API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Input, RadioButton, RadioSet, Static

from durable.errors import DurableError
from durable.restarts import RestartPlan, plan_restart
from durable.store.browse import RunRow, TaskRow
from durable.text import clean
from tui.render.palette import state_cell
from tui.render.timefmt import clock, relative
from tui.widgets import VimTable

Mode = Literal["failure", "from_task", "rerun"]

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 100; height: auto; max-height: 90%; border: thick $warning;
    background: $surface; padding: 1 2;
}}
{name} .title {{ text-style: bold; }}
{name} .error {{ color: $error; }}
{name} Horizontal {{ height: auto; margin-top: 1; }}
{name} DataTable {{ height: auto; max-height: 16; }}
"""


def parse_value(raw: str) -> Any:
    """Read a typed value as the CLI's `-p k=v` does: JSON when it parses, else text."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def task_label(slug: str, map_index: int) -> str:
    """`slug`, or `slug[i]` for a mapped child: how the CLI and approve name one."""
    return slug if map_index < 0 else f"{slug}[{map_index}]"


# Restart ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RestartChoice:
    """What the Restart modal was confirmed with."""

    mode: Mode
    from_tasks: tuple[str, ...] | None
    """The slugs to restart from ("from_task"); None otherwise."""


class RestartModal(ModalScreen[RestartChoice | None]):
    """Retry a run: from failure, from a task and downstream, or as a new run; the
    preview lists exactly the task runs `durable.restarts.plan_restart` resets."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Confirm"),
        Binding("enter", "confirm", "Confirm", show=False),
        Binding("n", "cancel_modal", "Cancel"),
        Binding("escape", "cancel_modal", "Cancel", show=False),
        Binding("1", "choose('failure')", "From failure"),
        Binding("2", "choose('from_task')", "From task"),
        Binding("3", "choose('rerun')", "New run"),
    ]
    DEFAULT_CSS = MODAL_CSS.format(name="RestartModal")

    def __init__(
        self, run: RunRow, tasks: Sequence[TaskRow], edges: Sequence[tuple[str, str]],
        *, selected: str | None = None, mode: Mode = "failure",
    ) -> None:  # fmt: skip
        super().__init__()
        self.run, self.tasks, self.edges = run, tuple(tasks), tuple(edges)
        self.selected = selected
        """The task slug offered for "from the selected task" (None: not offered)."""
        self.mode: Mode = "failure" if mode == "from_task" and not selected else mode
        self.plan: RestartPlan | None = None
        """The plan the preview shows (None for a whole new run)."""

    def compose(self) -> ComposeResult:
        run = self.run
        here = (Text(clean(f"2  From {self.selected} + downstream")) if self.selected else
                Text("2  From the selected task + downstream (pick one in Run detail)"))  # fmt: skip
        with Vertical():
            yield Static(Text(clean(f"Retry run {run.id}?")), classes="title")
            yield Static(Text(clean(f"{run.id} · {run.flow_name} v{run.flow_version} · "
                                    f"{run.state}")))  # fmt: skip
            with RadioSet(id="mode"):
                yield RadioButton(Text("1  Retry from failure"), id="failure",
                                  value=self.mode == "failure")  # fmt: skip
                yield RadioButton(here, id="from_task", value=self.mode == "from_task",
                                  disabled=self.selected is None)  # fmt: skip
                yield RadioButton(Text("3  Whole run as a new run with the same "
                                       "parameters"), id="rerun",
                                  value=self.mode == "rerun")  # fmt: skip
            yield Static(id="summary")
            yield DataTable(id="preview", cursor_type="row", zebra_stripes=False)
            with Horizontal():
                yield Button("Cancel (n)", id="no", variant="default")
                yield Button("Confirm (y)", id="yes", variant="warning")

    def on_mount(self) -> None:
        table = self.query_one("#preview", DataTable)
        for key, label in (("do", "Does"), ("task", "Task run"), ("state", "Now"),
                           ("why", "Why")):  # fmt: skip
            table.add_column(label, key=key)
        self.show_plan()
        self.query_one("#no", Button).focus()  # destructive: the default is Cancel

    @on(RadioSet.Changed, "#mode")
    def _mode_changed(self, event: RadioSet.Changed) -> None:
        mode = event.pressed.id
        if mode in ("failure", "from_task", "rerun") and mode != self.mode:
            self.mode = mode  # type: ignore[assignment]  # one of the Mode literals
            self.show_plan()

    def action_choose(self, mode: Mode) -> None:
        button = self.query_one(f"#{mode}", RadioButton)
        if not button.disabled:
            button.value = True  # RadioSet.Changed recomputes the preview

    def show_plan(self) -> None:
        """Recompute the preview for the chosen option."""
        table = self.query_one("#preview", DataTable)
        table.clear()
        if self.mode == "rerun":
            self.plan = None
            for task in self.tasks:
                table.add_row(Text("▷ new run"), Text(task_label(task.slug, task.map_index)),
                              state_cell(task.state), Text("runs in the new run"))  # fmt: skip
            summary = (f"A new run of {self.run.flow_name} with the parameters of run "
                       f"{self.run.id}; this run stays as it is.")  # fmt: skip
            self._summary(summary, ok=True)
            return
        from_tasks = (
            {self.selected} if self.mode == "from_task" and self.selected else None
        )
        self.plan = plan = plan_restart(self.tasks, self.edges, from_tasks=from_tasks)
        for planned in plan.reset:
            table.add_row(Text("↻ reset"), Text(task_label(planned.slug, planned.map_index)),
                          state_cell(planned.state), Text(planned.reason))  # fmt: skip
        for planned in plan.reused:
            table.add_row(Text("= reuse"), Text(task_label(planned.slug, planned.map_index)),
                          state_cell(planned.state), Text(planned.reason))  # fmt: skip
        if plan.empty:
            self._summary("Nothing to retry: no task run failed, timed out or was "
                          "cancelled.", ok=False)  # fmt: skip
            return
        self._summary(f"{len(plan.reset)} task run(s) run again from "
                      f"{', '.join(plan.roots)}; {len(plan.reused)} reused with their "
                      "results. A worker runs it.", ok=True)  # fmt: skip

    def _summary(self, text: str, *, ok: bool) -> None:
        self.query_one("#summary", Static).update(Text(text))
        self.query_one("#yes", Button).disabled = not ok

    def choice(self) -> RestartChoice | None:
        """What confirming now asks for (None when there is nothing to do)."""
        if self.mode == "rerun":
            return RestartChoice("rerun", None)
        if self.plan is None or self.plan.empty:
            return None
        if self.mode == "from_task" and self.selected:
            return RestartChoice("from_task", (self.selected,))
        return RestartChoice("failure", None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self.action_confirm()
        else:
            self.dismiss(None)

    def action_confirm(self) -> None:
        choice = self.choice()
        if choice is not None:
            self.dismiss(choice)

    def action_cancel_modal(self) -> None:
        self.dismiss(None)


# Trigger form -------------------------------------------------------------------------
class TriggerForm(ModalScreen[Any]):
    """A custom run: one input per parameter, its default as the placeholder. Enter
    submits through `submit` (called in a thread); a DurableError it raises is shown in
    the form, which stays open with what was typed. Dismisses with submit's result."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel_modal", "Cancel"),
        Binding("ctrl+s", "submit", "Run"),
    ]
    DEFAULT_CSS = (
        MODAL_CSS.format(name="TriggerForm")
        + """
    TriggerForm VerticalScroll { height: auto; max-height: 24; }
    TriggerForm Input.-invalid { border: tall $error; }
    """
    )

    def __init__(
        self, flow_name: str, version: int | None, parameters: Sequence[Any],
        submit: Callable[[dict[str, Any]], Any],
    ) -> None:  # fmt: skip
        super().__init__()
        self.flow_name, self.version = flow_name, version
        self.parameters = list(parameters)
        """The flow's `ParameterRow`s (name, default JSON text or None, required)."""
        self.submit = submit
        self.busy = False

    def compose(self) -> ComposeResult:
        version = f" v{self.version}" if self.version is not None else ""
        with Vertical():
            yield Static(Text(clean(f"Run {self.flow_name}{version} with parameters")),
                         classes="title")  # fmt: skip
            with VerticalScroll():
                if not self.parameters:
                    yield Static(Text("This flow has no parameters."))
                for index, param in enumerate(self.parameters):
                    yield Static(_parameter_label(param))
                    yield Input(placeholder=_placeholder(param), id=f"p{index}")
            yield Static(Text("Values are JSON when they parse (1, true, [1, 2], "
                              '{"a": 1}), else text; empty takes the default.'))  # fmt: skip
            yield Static(id="error", classes="error")
            with Horizontal():
                yield Button("Cancel (esc)", id="no", variant="default")
                yield Button("Run (enter)", id="yes", variant="primary")

    def on_mount(self) -> None:
        first = self.query(Input)
        (first.first() if first else self.query_one("#yes", Button)).focus()

    def values(self) -> dict[str, Any]:
        """The typed values, parsed; empty inputs are left out (their default runs)."""
        values: dict[str, Any] = {}
        for index, param in enumerate(self.parameters):
            raw = self.query_one(f"#p{index}", Input).value
            if raw.strip():
                values[param.name] = parse_value(raw)
        return values

    @on(Input.Submitted)
    def _entered(self) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "yes":
            self.action_submit()
        else:
            self.dismiss(None)

    def action_submit(self) -> None:
        if not self.busy:
            self.busy = True
            self._submit(self.values())

    @work(thread=True, exit_on_error=False, group="trigger-form")
    def _submit(self, values: dict[str, Any]) -> None:
        try:
            result = self.submit(values)
        except DurableError as exc:
            self.app.call_from_thread(self.show_error, str(exc))
            return
        self.app.call_from_thread(self.dismiss, result)

    def show_error(self, message: str) -> None:
        """Show why the run was refused, and mark the inputs it names."""
        self.busy = False
        self.query_one("#error", Static).update(Text(message))
        named = set(re.findall(r"'([^']+)'", message))
        for index, param in enumerate(self.parameters):
            self.query_one(f"#p{index}", Input).set_class(
                param.name in named, "-invalid"
            )

    def action_cancel_modal(self) -> None:
        self.dismiss(None)


def _parameter_label(param: Any) -> Text:
    label = Text(clean(param.name), style="bold")
    if param.required:
        label.append(" *", style="bold red")
        label.append("  required")
    if param.default is not None:
        kind = type(parse_value(param.default)).__name__
        label.append(clean(f"  ({kind}, default {param.default})"))
    return label


def _placeholder(param: Any) -> str:
    if param.default is not None:
        return str(param.default)
    return "required" if param.required else "(its default)"


# Action log ---------------------------------------------------------------------------
class ActionLogScreen(ModalScreen[None]):
    """The audit log: every action taken through the control API, newest first."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("q", "close", "Close", show=False),
    ]
    DEFAULT_CSS = (
        MODAL_CSS.format(name="ActionLogScreen")
        + """
    ActionLogScreen > Vertical { width: 90%; height: 80%; }
    ActionLogScreen VimTable { height: 1fr; max-height: 100%; }
    """
    )
    COLUMNS = [("ok", ""), ("at", "When"), ("actor", "Who"), ("verb", "Action"),
               ("target", "Target"), ("outcome", "Outcome")]  # fmt: skip

    def __init__(self, load: Callable[[], Sequence[Any]], now: float) -> None:
        super().__init__()
        self.load, self.now = load, now

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(Text("Action log (newest first)"), classes="title")
            yield Static(id="error", classes="error hidden")
            yield VimTable(self.COLUMNS, id="actions")

    def on_mount(self) -> None:
        self._load()

    @work(thread=True, exit_on_error=False, group="action-log")
    def _load(self) -> None:
        try:
            rows = list(self.load())
        except Exception as exc:  # noqa: BLE001 (a locked or old database: say so)
            self.app.call_from_thread(self.show_error, exc)
            return
        self.app.call_from_thread(self.show, rows)

    def show(self, rows: Sequence[Any]) -> None:
        table = self.query_one("#actions", VimTable)
        table.show([
            (str(row.id), [Text("✓" if row.ok else "✗"),
                           Text(f"{clock(row.at)} ({relative(row.at, self.now)})"),
                           Text(row.actor), Text(row.verb), Text(row.target),
                           Text(row.outcome)])
            for row in rows
        ])  # fmt: skip
        table.border_title = f"{len(rows)} action(s)"
        table.focus()

    def show_error(self, exc: Exception) -> None:
        error = self.query_one("#error", Static)
        error.update(Text(clean(f"Cannot read the log: {exc}")))
        error.remove_class("hidden")

    def action_close(self) -> None:
        self.dismiss(None)
