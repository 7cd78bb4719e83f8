"""How the CLI shows flows, runs, task runs, history and logs in a terminal.

Everything read from the database is shown as plain text: control characters are replaced
and nothing is read as markup, so a hostile task name cannot drive the terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pendulum
from pendulum.tz import local_timezone
from rich.console import Console
from rich.table import Column, Table
from rich.text import Text

from durable.store.records import (
    FlowRunRecord,
    FlowSummaryRecord,
    LogRecord,
    ScheduledRunRecord,
    StateRecord,
    TaskRunRecord,
    WorkerRecord,
)
from durable.text import clean

_LEVELS = {10: "DEBUG", 20: "INFO", 30: "WARNING", 40: "ERROR", 50: "CRITICAL"}
STYLES = {"Success": "green", "Failed": "red", "TimedOut": "red", "TriggerFailed": "red",
          "Running": "yellow", "Retrying": "yellow", "Skipped": "dim",
          "Late": "magenta", "Crashed": "red", "Cancelled": "dim"}  # fmt: skip


def plain(value: Any) -> Text:
    """Return text safe to print: no control characters, no markup."""
    return Text(clean(value))


def when(seconds: float | None) -> str:
    """Format a stored time in the viewer's local time zone."""
    if seconds is None:
        return "-"
    local = pendulum.from_timestamp(seconds).in_timezone(local_timezone())
    return local.format("YYYY-MM-DD HH:mm:ss")


def took(start: float | None, end: float | None) -> str:
    """Format the time between two stored instants."""
    if start is None or end is None:
        return "-"
    span = end - start
    return f"{span * 1000:.1f}ms" if span < 1 else f"{span:.2f}s"


def state_text(name: str) -> Text:
    """A state name, coloured when the terminal supports it."""
    return Text(clean(name), style=STYLES.get(name, ""))


def _console() -> Console:
    # soft_wrap: lines of text (log lines, headers) are never cut into pieces; tables
    # still fit the terminal.
    return Console(highlight=False, soft_wrap=True)


def print_runs(runs: Sequence[FlowRunRecord]) -> None:
    """Print a table of flow runs."""
    if not runs:
        _console().print("No flow runs yet.")
        return
    table = Table("Run", "Flow", "State", "Started", "Duration", box=None)
    for run in runs:
        table.add_row(
            plain(run.id), plain(f"{run.flow_name} v{run.flow_version}"),
            state_text(run.state), when(run.started_at or run.created_at),
            took(run.started_at, run.ended_at),
        )  # fmt: skip
    _console().print(table)


def print_scheduled_runs(runs: Sequence[ScheduledRunRecord]) -> None:
    """Print a table of scheduled runs (ticks, triggers, backfills)."""
    if not runs:
        _console().print("No scheduled runs.")
        return
    table = Table("Flow", "Kind", "Scheduled for", "Status", "Worker", "Message",
                  box=None)  # fmt: skip
    table.columns.insert(0, Column("Run", no_wrap=True))
    for run in runs:
        table.add_row(
            plain(run.id), plain(f"{run.flow_name} v{run.flow_version}"),
            plain(run.kind), when(run.scheduled_for), state_text(run.status),
            plain(run.claimed_by or "-"), plain(run.message or ""),
        )  # fmt: skip
    _console().print(table)


def print_workers(workers: Sequence[tuple[WorkerRecord, str]]) -> None:
    """Print a table of workers, each with its status (running, stopped, dead)."""
    if not workers:
        _console().print("No worker has run on this database; start one with: "
                         "durable worker")  # fmt: skip
        return
    table = Table("Worker", "Status", "Pid", "Runs", "Started", "Last seen", box=None)
    for worker, status in workers:
        table.add_row(
            plain(worker.name), plain(status), str(worker.pid),
            f"{worker.running}/{worker.concurrency}", when(worker.started_at),
            when(worker.stopped_at or worker.heartbeat_at),
        )  # fmt: skip
    _console().print(table)


def print_actions(actions: Sequence[Any]) -> None:
    """Print the audit log (`ActionRecord`s), oldest first."""
    if not actions:
        _console().print("No action has been taken on this database yet")
        return
    table = Table("When", "Who", "Action", "Target", "Outcome", box=None)
    for action in actions:
        outcome = plain(action.outcome)
        if not action.ok:
            outcome = Text("refused: ", style="red") + outcome
        table.add_row(when(action.at), plain(action.actor), plain(action.verb),
                      plain(action.target), outcome)  # fmt: skip
    _console().print(table)


@dataclass(frozen=True, slots=True)
class FlowLine:
    """One row of `durable flows`: a flow and when its schedule next starts a run."""

    flow: FlowSummaryRecord
    next_start: float | None
    """The next scheduled start (None: no schedule, or it has ended)."""
    problem: str | None = None
    """Why the schedule could not be loaded, if it could not."""


def print_flows(lines: Sequence[FlowLine]) -> None:
    """Print a table of flows: version, registration, schedule, next start, latest run."""
    if not lines:
        _console().print("No flows yet; register one with: durable register FILE")
        return
    table = Table("Flow", "Version", "Registered", "Schedule", "Next run", "Last run",
                  box=None)  # fmt: skip
    for line in lines:
        flow = line.flow
        if line.problem is not None:
            upcoming = plain(f"(cannot load: {line.problem})")
        else:
            upcoming = Text(when(line.next_start))
        last = Text("-") if flow.last_run_state is None else Text.assemble(
            state_text(flow.last_run_state), " ", when(flow.last_run_at)
        )  # fmt: skip
        schedule = plain(flow.schedule_text or "-")
        if flow.paused:
            schedule.append(" (paused)", style="bold")
        table.add_row(plain(flow.name), f"v{flow.version}", _registered(flow),
                      schedule, upcoming, last)  # fmt: skip
    _console().print(table)


def _registered(flow: FlowSummaryRecord) -> str:
    if flow.registered_version is None:
        return "no"
    which = "yes" if flow.registered_version == flow.version else (
        f"v{flow.registered_version}"
    )  # fmt: skip
    return f"{which}, {when(flow.registered_at)}"


@dataclass(frozen=True, slots=True)
class RunDetail:
    """Everything `durable show` prints about one run."""

    run: FlowRunRecord
    parameters: dict[str, Any] | int
    """The parameters, or the size of pickled ones (not shown: unpickling runs code)."""
    task_runs: list[TaskRunRecord]
    history: list[StateRecord]


def print_run(detail: RunDetail) -> None:
    """Print a run's header, its task runs and its state history."""
    run, console = detail.run, _console()
    console.print(Text.assemble(
        ("Flow run ", "bold"), plain(run.id), "  flow ", plain(run.flow_name),
        f" v{run.flow_version}  ", state_text(run.state), "  ", plain(run.state_message),
    ))  # fmt: skip
    console.print(Text.assemble(
        "Started ", when(run.started_at), "  ended ", when(run.ended_at),
        "  duration ", took(run.started_at, run.ended_at),
    ))  # fmt: skip
    parameters = detail.parameters
    console.print(Text("Parameters ").append(plain(
        f"(pickled, {parameters} bytes; not shown: unpickling runs code)"
        if isinstance(parameters, int) else _dump(parameters)
    )))  # fmt: skip
    table = Table("Task run", "State", "Attempts", "Duration", "Message", box=None)
    for t in detail.task_runs:
        slug = t.task_slug if t.map_index < 0 else f"{t.task_slug}[{t.map_index}]"
        if t.run_name:
            slug = f"{slug} ({t.run_name})"
        table.add_row(plain(slug), state_text(t.state), str(t.attempts),
                      took(t.started_at, t.ended_at), plain(t.state_message))  # fmt: skip
    console.print(table)
    if detail.history:
        slugs = {t.id: t.task_slug for t in detail.task_runs}
        history = Table("Time", "Of", "State", "Message", box=None, title="State history",
                        title_justify="left")  # fmt: skip
        for s in detail.history:
            owner = (
                "flow run" if s.task_run_id is None else slugs.get(s.task_run_id, "?")
            )
            history.add_row(f"{when(s.timestamp)}.{int(s.timestamp * 1000) % 1000:03d}",
                            plain(owner), state_text(s.name), plain(s.message))  # fmt: skip
        console.print(history)


def print_logs(logs: Sequence[LogRecord], task_slugs: dict[str, str]) -> None:
    """Print log lines with their time, level, task run and logger."""
    console = _console()
    if not logs:
        console.print("No log lines for this run.")
    for log in logs:
        of = task_slugs.get(log.task_run_id or "", "flow run")
        level = _LEVELS.get(log.level, str(log.level))
        console.print(Text.assemble(
            f"[{when(log.timestamp)}] {level} - ", plain(of), " - ", plain(log.logger),
            " | ", plain(log.message),
        ))  # fmt: skip


def _dump(value: Any) -> str:
    try:
        return json.dumps(value, default=repr)
    except (TypeError, ValueError):
        return repr(value)
