"""The `durable` command group, its shared options, and how errors and outcomes are
reported: one line and an exit code, tracebacks only with `--debug`."""

from __future__ import annotations

import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import anyio
import click

from durable.errors import (
    DatabaseAccessError,
    DiskFullError,
    DurableError,
    SchemaTooNewError,
    StoreError,
)
from durable.states import Paused
from durable.store import Store
from durable.store.connection import ALLOW_INSECURE_PERMS
from durable.text import clean

T = TypeVar("T")

EXIT_FAILED, EXIT_USAGE, EXIT_STORE, EXIT_SCHEMA, EXIT_INTERRUPTED = 1, 2, 3, 5, 130
EXIT_DISK_FULL = 4


class Settings:
    """Options of the `durable` group, shared by every subcommand."""

    def __init__(self, db: str | None, debug: bool) -> None:
        self.db, self.debug = db, debug


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one error line (control characters shown, not obeyed) and exit."""
    click.echo(f"Error: {clean(message)}", err=True)
    sys.exit(code)


@contextmanager
def reported(settings: Settings) -> Iterator[None]:
    """Turn durable's errors into one line and an exit code (tracebacks with --debug)."""
    try:
        yield
    except DurableError as exc:
        if settings.debug:
            raise
        fail(str(exc), exit_code_of(exc))


def exit_code_of(exc: DurableError) -> int:
    """The exit code for one of durable's errors (docs: README, Exit codes)."""
    if isinstance(exc, SchemaTooNewError):
        return EXIT_SCHEMA
    if isinstance(exc, DiskFullError):
        return EXIT_DISK_FULL
    if isinstance(exc, DatabaseAccessError):
        return EXIT_USAGE
    return EXIT_STORE if isinstance(exc, StoreError) else EXIT_USAGE


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


def finish(state: Any, run_id: str | None) -> NoReturn:
    """Print the run's outcome and exit 0 on success (or a pause), 1 otherwise."""
    if isinstance(state, Paused):
        waiting = state.context.get("waiting") or ["TASK"]
        click.echo(f"Flow run {run_id} paused: {clean(state.message)} Approve with: durable "
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
@click.option("--allow-insecure-perms", is_flag=True,
              help="Write a database that other users can write (refused otherwise; "
              "env: DURABLE_ALLOW_INSECURE_PERMS=1).")  # fmt: skip
@click.pass_context
def cli(
    ctx: click.Context, db: str | None, debug: bool, allow_insecure_perms: bool
) -> None:
    """durable: Prefect-1-style flows, checkpointed to SQLite, resumable after a crash."""
    if allow_insecure_perms:  # through the environment: the runs a worker starts too
        os.environ[ALLOW_INSECURE_PERMS] = "1"
    ctx.obj = Settings(db, debug)


pass_settings = click.make_pass_decorator(Settings)


def main() -> None:
    """Entry point of the `durable` console script."""
    try:
        cli(prog_name="durable")
    except Exception as exc:  # a bug of ours: one line, the traceback with --debug
        if "--debug" in sys.argv[1:]:
            raise
        fail(f"{type(exc).__name__}: {exc} (run again with --debug for the traceback)",
             EXIT_FAILED)  # fmt: skip
