"""Commands that run flows: run, resume, approve."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any, NoReturn

import click

from durable.cli.base import (
    EXIT_INTERRUPTED,
    Settings,
    cli,
    fail,
    finish,
    pass_settings,
    reported,
    with_store,
)
from durable.cli.loading import load_flow, parse_params
from durable.core.flow import Flow
from durable.store import Store
from durable.store.connection import Durability
from durable.store.records import (
    FlowRunRecord,
    TaskRunRecord,
    Transition,
)
from durable.timesource import SYSTEM_TIME


def _run_flow(settings: Settings, flow: Flow, *, run_id: str, **options: Any) -> Any:
    from durable.engine.flow_runner import run_flow  # the engine loads only to run

    try:
        with reported(settings):
            return run_flow(flow, db=settings.db, run_id=run_id, **options)
    except KeyboardInterrupt:
        fail(f"Interrupted; continue with: durable resume {run_id}", EXIT_INTERRUPTED)


@cli.command()
@click.argument("target", metavar="FILE[:FLOW]")
@click.option(
    "--param",
    "-p",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="A parameter; VALUE is read as JSON when it parses. Repeatable.",
)
@click.option("--run-id", help="Id for the new run (default: generated).")
@click.option(
    "--durability",
    type=click.Choice(["full", "normal"]),
    default=None,
    help="fsync level: full (default) survives power loss; normal is faster.",
)
@pass_settings
def run(settings: Settings, target: str, params: tuple[str, ...], run_id: str | None,
        durability: Durability | None) -> None:  # fmt: skip
    """Run a flow from a Python file."""
    path, _, name = (
        target.partition(":") if not os.path.exists(target) else (target, "", "")
    )
    flow = load_flow(path, name or None, debug=settings.debug)
    from durable.engine.flow_runner import new_run_id

    run_id = run_id or new_run_id()
    parameters = parse_params(params)
    with reported(settings):
        flow.validate_parameters(parameters)  # a bad parameter is one line, no run id
    click.echo(f"Flow run {run_id} of flow {flow.name!r}", err=True)
    state = _run_flow(settings, flow, parameters=parameters, run_id=run_id,
                      durability=durability or _env_durability())  # fmt: skip
    finish(state, run_id)


def _env_durability() -> Durability:
    value = os.environ.get("DURABLE_DURABILITY", "full").lower()
    if value not in ("full", "normal"):
        fail(f"DURABLE_DURABILITY must be 'full' or 'normal', not {value!r}")
    return "normal" if value == "normal" else "full"


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--file", "file", metavar="PATH", help="The flow's file, if it moved.")
@click.option(
    "--allow-flow-changes",
    is_flag=True,
    help="Resume even though the flow's tasks or edges changed.",
)
@pass_settings
def resume(settings: Settings, run_id: str, file: str | None,
           allow_flow_changes: bool) -> None:  # fmt: skip
    """Resume a run: finished task runs are skipped, the rest run."""
    record = with_store(settings, lambda store: store.get_flow_run(run_id))
    continue_run(settings, record, file, allow_flow_changes)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.argument("task_ref", metavar="TASK")
@click.option("--file", "file", metavar="PATH", help="The flow's file, if it moved.")
@pass_settings
def approve(settings: Settings, run_id: str, task_ref: str, file: str | None) -> None:
    """Approve a paused task run (TASK: its slug, or SLUG[i] for a mapped child), then
    continue the run."""
    record = with_store(settings, lambda store: store.get_flow_run(run_id))

    async def approve_in(store: Store) -> None:
        paused = await _paused_task_run(store, record, task_ref)
        message = f"Approved by {_user()}."
        store.record_task_state(
            record.id, paused.id, Transition("Resume", message, SYSTEM_TIME.timestamp(),
                                             None, False),
            attempts=paused.attempts,
        )  # fmt: skip
        await store.flush()

    with_store(settings, approve_in, writable=True)
    click.echo(f"Approved {task_ref} of run {record.id}; continuing the run", err=True)
    continue_run(settings, record, file, allow_flow_changes=False)


async def _paused_task_run(store: Store, run: FlowRunRecord, ref: str) -> TaskRunRecord:
    slug, _, rest = ref.partition("[")
    index = int(rest.rstrip("]")) if rest.rstrip("]").isdigit() else -1
    task_runs = await store.list_task_runs(run.id)
    found = [t for t in task_runs if t.task_slug == slug and t.map_index == index]
    if not found:
        found = [t for t in task_runs if t.task_name == ref and t.state == "Paused"]
    paused = [t for t in task_runs if t.state == "Paused"]
    names = ", ".join(_ref(t) for t in paused) or "none"
    if len(found) != 1:
        fail(f"Run {run.id!r} has no single task run {ref!r}; paused ones: {names}")
    if found[0].state != "Paused":
        fail(f"Task run {ref!r} of run {run.id!r} is {found[0].state}, not Paused; "
             f"paused ones: {names}")  # fmt: skip
    return found[0]


def _ref(task_run: TaskRunRecord) -> str:
    index = task_run.map_index
    return task_run.task_slug if index < 0 else f"{task_run.task_slug}[{index}]"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        return "an unnamed user"


def continue_run(
    settings: Settings,
    record: FlowRunRecord,
    file: str | None,
    allow_flow_changes: bool,
    *,
    restart: bool = False,
) -> NoReturn:
    """Load the run's flow (from its recorded file, or `file`) and drive the run on."""
    source = file or record.source_path
    if source is None:
        fail(f"Run {record.id!r} has no recorded flow file; pass --file PATH")
    if not Path(source).is_file():
        fail(
            f"The flow file of run {record.id!r} is gone ({source!r}); pass --file PATH"
        )
    flow = load_flow(source, record.flow_name, debug=settings.debug)
    state = _run_flow(settings, flow, run_id=record.id,
                      allow_flow_changes=allow_flow_changes,
                      durability=_env_durability(), restart=restart)  # fmt: skip
    finish(state, record.id)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--file", "file", metavar="PATH", help="The flow's file, if it moved.")
@pass_settings
def restart(settings: Settings, run_id: str, file: str | None) -> None:
    """Run a run's failed task runs, and everything downstream of them, again."""
    record = with_store(settings, lambda store: store.get_flow_run(run_id))
    continue_run(settings, record, file, allow_flow_changes=False, restart=True)
