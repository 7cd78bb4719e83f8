"""The worker commands: `durable worker` runs scheduled flows; the hidden `worker-run`
is what the worker starts in each child process."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import anyio
import click

from durable.cli.base import Settings, cli, pass_settings, reported, with_store
from durable.doctor import is_wal_reset_fixed
from durable.errors import DiskFullError
from durable.store import Store, resolve_db_path
from durable.timesource import SYSTEM_TIME
from durable.worker import CATCHUPS, Catchup, Launcher, SubprocessLauncher, Worker
from durable.worker.forkserver import ForkServerLauncher
from durable.worker.launcher import run_in_this_process


@cli.command()
@click.option("--concurrency", type=click.IntRange(min=1), default=4, show_default=True,
              help="The most runs to run at once.")  # fmt: skip
@click.option("--name", help="This worker's name (default: HOST:PID); unique per db.")
@click.option("--burst", is_flag=True,
              help="Run everything due now, wait for it, and exit.")  # fmt: skip
@click.option("--catchup", type=click.Choice(CATCHUPS), default="skip",
              show_default=True, help="Missed ticks after downtime: run the newest "
              "(skip), run all, or run none.")  # fmt: skip
@click.option("--grace", type=click.FloatRange(min=0), default=30.0, show_default=True,
              metavar="SECONDS", help="On SIGTERM/Ctrl-C, how long running runs may "
              "finish before they are stopped (they resume later).")  # fmt: skip
@click.option("--poll", type=click.FloatRange(min=0.05), default=1.0, hidden=True)
# Tests only (RELIABILITY A3): a lease short enough to expire within a test.
@click.option("--lease-seconds", type=click.FloatRange(min=0.5), default=30.0,
              hidden=True)  # fmt: skip
@pass_settings
def worker(settings: Settings, concurrency: int, name: str | None, burst: bool,
           catchup: Catchup, grace: float, poll: float,
           lease_seconds: float) -> None:  # fmt: skip
    """Create scheduled runs of registered flows and run each in its own process.

    SIGTERM or Ctrl-C stops claiming and gives the running runs --grace seconds to
    finish; the rest are stopped and given back to resume later. A second signal
    exits at once, leaving them resumable.
    """

    async def work(store: Store) -> None:
        async with _launcher(store) as launcher:
            runner = Worker(
                store, SYSTEM_TIME, launcher, concurrency=concurrency, name=name,
                catchup=catchup, grace=timedelta(seconds=grace),
                lease=timedelta(seconds=lease_seconds),
            )  # fmt: skip
            click.echo(f"Worker {runner.name} on {store.path}", err=True)
            if not is_wal_reset_fixed(sqlite3.sqlite_version_info):
                click.echo(f"Warning: SQLite {sqlite3.sqlite_version} has the WAL-reset "
                           "bug (see: durable doctor); several workers writing one "
                           "database at once can corrupt it", err=True)  # fmt: skip
            if burst:
                await runner.burst()
                if runner.disk_full_until is not None:
                    raise DiskFullError(
                        "A run stopped because the disk is full; it was given back "
                        "and resumes once there is room: free some space, then run "
                        "the worker again"
                    )
            else:
                await _serve(runner, timedelta(seconds=poll))

    with_store(settings, work, writable=True)


@asynccontextmanager
async def _launcher(store: Store) -> AsyncIterator[Launcher]:
    """Fork runs from a warm server where fork exists (and DURABLE_WORKER_FORK is not
    0); else start a new `durable worker-run` process per run."""
    if hasattr(os, "fork") and os.environ.get("DURABLE_WORKER_FORK", "1") != "0":
        async with ForkServerLauncher(store.path) as launcher:
            yield launcher
    else:
        yield SubprocessLauncher(store.path)


async def _serve(runner: Worker, poll: timedelta) -> None:
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    if runner.stopping:  # a second signal: leave the runs resumable
                        click.echo("Stopping now; running runs resume later", err=True)
                        group.cancel_scope.cancel()
                        return
                    click.echo(f"Stopping: running runs have {runner.grace.total_seconds():g} s "
                               "to finish",
                               err=True)  # fmt: skip
                    runner.stopping = True

        group.start_soon(watch)
        await runner.serve(poll)
        group.cancel_scope.cancel()


@cli.command("worker-run", hidden=True)
@click.argument("run_id")
@click.option("--lease", help="The claim's lease token: writes stop once it is lost.")
@pass_settings
def worker_run(settings: Settings, run_id: str, lease: str | None) -> None:
    """Run (or resume) one scheduled run: what `durable worker` starts per run."""

    # Ctrl-C in a terminal reaches the whole process group: the worker decides what
    # happens to its runs (it lets them finish, then stops them after its grace period).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with reported(settings):
        db = resolve_db_path(settings.db)
    sys.exit(run_in_this_process(str(db), run_id, lease))
