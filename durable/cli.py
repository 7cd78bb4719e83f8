"""The `durable` command: run, resume and register flows, and look at flows, runs, task
runs and logs.

Errors print one line and exit non-zero (no traceback unless `--debug`). Exit codes: 0 the
flow run succeeded, 1 it did not (or durable itself failed), 2 bad input, 3 the database is
unusable, 5 the database comes from a newer durable, 130 interrupted (the run is resumable).
"""

from __future__ import annotations

import getpass
import json
import os
import runpy
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import anyio
import click
from pendulum import DateTime

from durable import views
from durable.core.flow import Flow
from durable.errors import DurableError, SchemaTooNewError, StoreError
from durable.states import Paused
from durable.store import Store, resolve_db_path
from durable.store.connection import Durability
from durable.store.records import (
    FlowRunRecord,
    FlowSummaryRecord,
    LogRecord,
    RegisteredVersion,
    TaskRunRecord,
    Transition,
)
from durable.store.registry import load_copy
from durable.timesource import SYSTEM_TIME

T = TypeVar("T")

EXIT_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_SCHEMA, EXIT_INTERRUPTED = 1, 2, 3, 5, 130


class Settings:
    """Options of the `durable` group, shared by every subcommand."""

    def __init__(self, db: str | None, debug: bool) -> None:
        self.db, self.debug = db, debug


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one error line and exit."""
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@contextmanager
def reported(settings: Settings) -> Iterator[None]:
    """Turn durable's errors into one line and an exit code (tracebacks with --debug)."""
    try:
        yield
    except DurableError as exc:
        if settings.debug:
            raise
        code = EXIT_SCHEMA if isinstance(exc, SchemaTooNewError) else (
            EXIT_STORE if isinstance(exc, StoreError) else EXIT_USAGE
        )  # fmt: skip
        fail(str(exc), code)


def with_store(
    settings: Settings, work: Callable[[Store], Awaitable[T]], *, writable: bool = False
) -> T:
    """Open the database (read-only unless asked), run `work` on it, close it."""

    async def main() -> T:
        store = await Store.open(settings.db, readonly=not writable)
        try:
            return await work(store)
        finally:
            await store.close()

    with reported(settings):
        return anyio.run(main)
    raise AssertionError("unreachable")  # pragma: no cover


def load_flow(path: str, name: str | None, *, debug: bool = False) -> Flow:
    """Load a Python file and return its flow (the one named `name` if it has several)."""
    flows = load_flows(path, debug=debug)
    if name is not None:
        if name not in flows:
            fail(f"{path!r} has no flow {name!r}; it has: {', '.join(sorted(flows))}")
        return flows[name]
    if len(flows) > 1:
        fail(f"{path!r} has several flows ({', '.join(sorted(flows))}); pick one with "
             f"{path}:NAME")  # fmt: skip
    return next(iter(flows.values()))


def load_flows(path: str, *, debug: bool = False) -> dict[str, Flow]:
    """Load a Python file and return its module-level flows by name, in file order."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        fail(f"No such flow file: {path!r}")
    sys.path.insert(0, str(file.parent))  # sibling imports work, as with `python FILE`
    try:
        namespace = runpy.run_path(str(file), run_name="__durable_flow_file__")
    except Exception as exc:  # the user's file failed to load, in any way
        if debug:
            raise
        fail(
            f"Loading {path!r} failed: {type(exc).__name__}: {exc} (--debug shows where)"
        )
    flows = {v.name: v for v in namespace.values() if isinstance(v, Flow)}
    if not flows:
        fail(f"{path!r} defines no Flow at module level")
    return flows


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn `k=v` pairs into parameters; values are JSON when they parse, else strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--param takes NAME=VALUE, not {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


def finish(state: Any, run_id: str | None) -> NoReturn:
    """Print the run's outcome and exit 0 on success (or a pause), 1 otherwise."""
    if isinstance(state, Paused):
        waiting = state.context.get("waiting") or ["TASK"]
        click.echo(f"Flow run {run_id} paused: {state.message} Approve with: durable "
                   f"approve {run_id} {waiting[0]}", err=True)  # fmt: skip
        sys.exit(0)
    ok = state.is_successful()
    hint = f"; see: durable show {run_id}" if run_id else ""
    click.echo(f"Flow run {run_id} finished: {state.name}{hint}", err=True)
    sys.exit(0 if ok else EXIT_FAILED)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", metavar="PATH", help="Database file (default: $DURABLE_DB, "
              "else $DURABLE_HOME/durable.db, else ~/.durable/durable.db).")  # fmt: skip
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, db: str | None, debug: bool) -> None:
    """durable: Prefect-1-style flows, checkpointed to SQLite, resumable after a crash."""
    ctx.obj = Settings(db, debug)


pass_settings = click.make_pass_decorator(Settings)


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
                      durability=_env_durability())  # fmt: skip
    finish(state, record.id)


@cli.command()
@click.option("--flow", "flow_name", metavar="NAME", help="Only runs of this flow.")
@click.option("--state", metavar="STATE", help="Only runs in this state (e.g. Failed).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@pass_settings
def runs(
    settings: Settings, flow_name: str | None, state: str | None, limit: int
) -> None:
    """List flow runs, newest first."""
    found = with_store(
        settings,
        lambda store: store.list_flow_runs(
            flow_name=flow_name, state=state, limit=limit
        ),
    )
    views.print_runs(found)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--history/--no-history", default=True, help="Show every transition.")
@pass_settings
def show(settings: Settings, run_id: str, history: bool) -> None:
    """Show a run: its task runs (states, attempts, durations) and state history."""

    async def read(store: Store) -> views.RunDetail:
        record = await store.get_flow_run(run_id)
        return views.RunDetail(
            record,
            await store.load_parameters(record.id),
            await store.list_task_runs(record.id),
            await store.list_states(record.id) if history else [],
        )

    views.print_run(with_store(settings, read))


@cli.command()
@click.argument("run_id", metavar="RUN")
@pass_settings
def logs(settings: Settings, run_id: str) -> None:
    """Print a run's log lines."""

    async def read(store: Store) -> tuple[list[LogRecord], dict[str, str]]:
        record = await store.get_flow_run(run_id)
        names = {t.id: t.task_slug for t in await store.list_task_runs(record.id)}
        return await store.list_logs(record.id), names

    views.print_logs(*with_store(settings, read))


@cli.command()
@click.argument("path", metavar="FILE")
@click.option("--flow", "flow_name", metavar="NAME", help="Register only this flow.")
@pass_settings
def register(settings: Settings, path: str, flow_name: str | None) -> None:
    """Store each flow of a file (or the one named) as a new version, with its schedule
    and a copy a worker can run; an unchanged flow keeps its version."""
    chosen = (
        [load_flow(path, flow_name, debug=settings.debug)]
        if flow_name is not None
        else list(load_flows(path, debug=settings.debug).values())
    )
    from durable.store.packaging import package_flow  # schedules load only to register

    file, now = Path(path).expanduser().resolve(), SYSTEM_TIME.timestamp()
    with reported(settings):  # every flow is checked before any is stored
        packages = [package_flow(f, file=file, registered_at=now) for f in chosen]

    async def save(store: Store) -> list[RegisteredVersion]:
        return [await store.register_flow(package) for package in packages]

    for outcome in with_store(settings, save, writable=True):
        if outcome.is_new:
            click.echo(f"Registered flow {outcome.name!r} as v{outcome.version}")
        else:
            click.echo(f"Flow {outcome.name!r} unchanged, still v{outcome.version}")


@cli.command()
@pass_settings
def flows(settings: Settings) -> None:
    """List flows: latest version, registration, schedule, next start and latest run."""
    found = with_store(settings, lambda store: store.list_flows())
    now = SYSTEM_TIME.now()
    views.print_flows([_flow_line(flow, now) for flow in found])


def _flow_line(flow: FlowSummaryRecord, now: DateTime) -> views.FlowLine:
    """Load a flow's registered schedule and find its next start after `now`."""
    if flow.schedule is None:
        return views.FlowLine(flow, None)
    try:
        upcoming = load_copy(flow.schedule, flow.source_path).next(1, after=now)
    except Exception as exc:  # noqa: BLE001 (unpickling and filters run user code)
        return views.FlowLine(flow, None, f"{type(exc).__name__}: {exc}")
    return views.FlowLine(flow, upcoming[0].timestamp() if upcoming else None)


@cli.group()
def db() -> None:
    """The database."""


@db.command("path")
@pass_settings
def db_path(settings: Settings) -> None:
    """Print the database file in use."""
    click.echo(str(resolve_db_path(settings.db)))


def main() -> None:
    """Entry point of the `durable` console script."""
    try:
        cli(prog_name="durable")
    except Exception as exc:  # a bug of ours: one line, the traceback with --debug
        if "--debug" in sys.argv[1:]:
            raise
        fail(f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)",
             EXIT_FAILED)  # fmt: skip
