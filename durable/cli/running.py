"""Commands that run flows: run, resume, approve."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NoReturn

import click

from durable.cli.base import (
    EXIT_DISK_FULL,
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
from durable.core.secret import check_secrets
from durable.errors import DiskFullError
from durable.executors import executor_from_spec
from durable.store.connection import Durability, check_access, resolve_db_path
from durable.store.records import (
    FlowRunRecord,
)

executor_option = click.option(
    "--executor",
    "executor_spec",
    metavar="KIND",
    help="Where task bodies run: local, concurrent[:N], process[:N] or dask[:ADDRESS] "
    "(default: the flow's executor, else local).",
)


def _executor(settings: Settings, spec: str | None) -> Any:
    with reported(settings):
        return None if spec is None else executor_from_spec(spec)


def _run_flow(settings: Settings, flow: Flow, *, run_id: str, **options: Any) -> Any:
    from durable.engine.flow_runner import run_flow  # the engine loads only to run

    try:
        with reported(settings):
            try:
                return run_flow(flow, db=settings.db, run_id=run_id, **options)
            except DiskFullError as exc:
                if settings.debug:
                    raise
                fail(f"{exc}: durable resume {run_id}", EXIT_DISK_FULL)
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
@executor_option
@pass_settings
def run(settings: Settings, target: str, params: tuple[str, ...], run_id: str | None,
        durability: Durability | None, executor_spec: str | None) -> None:  # fmt: skip
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
        check_secrets(flow.name, flow.sorted_tasks())  # so is a missing secret
    executor = _executor(settings, executor_spec)
    click.echo(f"Flow run {run_id} of flow {flow.name!r}", err=True)
    state = _run_flow(settings, flow, parameters=parameters, run_id=run_id,
                      durability=durability or _env_durability(),
                      executor=executor)  # fmt: skip
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
@executor_option
@pass_settings
def resume(settings: Settings, run_id: str, file: str | None,
           allow_flow_changes: bool, executor_spec: str | None) -> None:  # fmt: skip
    """Resume a run: finished task runs are skipped, the rest run."""
    executor = _executor(settings, executor_spec)
    _check_writable(settings)
    record = with_store(settings, lambda store: store.get_flow_run(run_id))
    continue_run(settings, record, file, allow_flow_changes, executor=executor)


def _check_writable(settings: Settings) -> None:
    # Before the read that finds the run: a reader would already create -wal and -shm
    # beside a database that this user may not write.
    with reported(settings):
        check_access(resolve_db_path(settings.db), write=True)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.argument("task_ref", metavar="TASK")
@click.option("--file", "file", metavar="PATH", help="The flow's file, if it moved.")
@click.option("--queue", is_flag=True,
              help="Let a worker continue the run instead of continuing it here.")  # fmt: skip
@pass_settings
def approve(
    settings: Settings, run_id: str, task_ref: str, file: str | None, queue: bool
) -> None:
    """Approve a paused task run (TASK: its slug, or SLUG[i] for a mapped child), then
    continue the run."""
    from durable import control

    _check_writable(settings)
    record = with_store(settings, lambda store: store.get_flow_run(run_id))
    if queue:
        queued = with_store(
            settings, lambda s: control.approve(s, record.id, task_ref), writable=True
        )
        _queued(f"Approved {task_ref} of run {record.id}", queued.served)
        return
    with_store(settings, lambda s: control.record_approval(s, record.id, task_ref),
               writable=True)  # fmt: skip
    click.echo(f"Approved {task_ref} of run {record.id}; continuing the run", err=True)
    continue_run(settings, record, file, allow_flow_changes=False)


def _queued(what: str, served: bool) -> None:
    click.echo(f"{what}; queued for a worker", err=True)
    if not served:
        click.echo("No worker is running on this database: start one with: durable "
                   "worker", err=True)  # fmt: skip


def continue_run(
    settings: Settings,
    record: FlowRunRecord,
    file: str | None,
    allow_flow_changes: bool,
    *,
    restart: bool | list[str] = False,
    executor: Any = None,
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
                      durability=_env_durability(), restart=restart,
                      executor=executor)  # fmt: skip
    finish(state, record.id)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--file", "file", metavar="PATH", help="The flow's file, if it moved.")
@click.option("--from", "from_tasks", metavar="TASK", multiple=True,
              help="Restart from this task (a slug; repeatable) and everything downstream "
                   "of it, instead of from the failed ones.")  # fmt: skip
@click.option("--dry-run", is_flag=True,
              help="Only list the task runs that would run again and those reused.")  # fmt: skip
@click.option("--queue", is_flag=True,
              help="Let a worker run the restart instead of running it here.")  # fmt: skip
@executor_option
@pass_settings
def restart(
    settings: Settings, run_id: str, file: str | None, from_tasks: tuple[str, ...],
    dry_run: bool, queue: bool, executor_spec: str | None,
) -> None:  # fmt: skip
    """Run a run's failed task runs, and everything downstream of them, again
    (successes are reused)."""
    from durable import control

    record = with_store(settings, lambda store: store.get_flow_run(run_id))
    start: list[str] | None = None
    if from_tasks:
        task_runs = with_store(settings, lambda s: s.list_task_runs(record.id))
        with reported(settings):
            start = control.task_slugs(record.id, task_runs, from_tasks)
    if dry_run:
        plan = with_store(settings, lambda s: control.plan_restart(s, record.id, start))
        for item in plan.reset:
            click.echo(
                f"run again  {control.task_ref(item.slug, item.map_index)}  {item.state}  ({item.reason})"
            )
        for item in plan.reused:
            click.echo(
                f"reuse      {control.task_ref(item.slug, item.map_index)}  {item.state}"
            )
        click.echo(f"{len(plan.reset)} task runs would run again, {len(plan.reused)} "
                   "reused", err=True)  # fmt: skip
        return
    if queue:
        queued = with_store(
            settings, lambda s: control.restart(s, record.id, from_tasks=start),
            writable=True,
        )  # fmt: skip
        _queued(f"Restart of run {record.id}", queued.served)
        return
    restart_from: bool | list[str] = start or True
    continue_run(settings, record, file, allow_flow_changes=False, restart=restart_from,
                 executor=_executor(settings, executor_spec))  # fmt: skip
