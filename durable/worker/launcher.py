"""Launching a claimed run: the `Launcher` protocol, an in-process launcher for tests and
a subprocess launcher for real use, and `run_scheduled`, what either one runs.

A launched run reports through a `Handle`: its pid and start token (recorded with the
claim so any worker can check the owner) and, once it ends, its exit code. Whether the
run finished is read from the store, not from the exit code: a run that exited without a
finished flow run crashed.
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import sys
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import anyio
import pendulum
from anyio.abc import Process

from durable.errors import DurableError, LeaseLostError
from durable.liveness import process_token
from durable.store import Store
from durable.store.records import ScheduledRunRecord
from durable.store.reruns import RESTART, parse_rerun
from durable.timesource import SYSTEM_TIME, TimeSource

logger = logging.getLogger(__name__)


class Handle(Protocol):
    """A launched run, as its worker sees it."""

    @property
    def pid(self) -> int:
        """The process the run executes in."""
        ...

    @property
    def token(self) -> str:
        """That process's start token (see `durable.liveness`)."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit code once the run has ended, None while it runs."""
        ...

    async def wait(self) -> int:
        """Wait for the run to end and return its exit code."""
        ...

    def terminate(self) -> None:
        """Ask the run's process to exit now (SIGTERM); it stays resumable."""
        ...

    def kill(self) -> None:
        """Kill the run's process (SIGKILL)."""
        ...


class Launcher(Protocol):
    """Starts claimed runs; the worker passes one in, so tests can run in-process."""

    async def launch(self, run: ScheduledRunRecord) -> Handle:
        """Start `run` and return its handle (the run may still be going)."""
        ...


class FinishedHandle:
    """The handle of a run that ran to its end before `launch` returned."""

    def __init__(self, returncode: int) -> None:
        self.pid = os.getpid()
        self.token = process_token(self.pid)
        self.returncode: int | None = returncode

    async def wait(self) -> int:
        """Return the exit code at once: the run has ended."""
        return self.returncode or 0

    def terminate(self) -> None:
        """Nothing to stop: the run has ended."""

    def kill(self) -> None:
        """Nothing to kill: the run has ended."""


async def run_scheduled(
    store: Store, run_id: str, time: TimeSource, lease_token: str | None = None
) -> bool:
    """Run (or resume) the flow run of schedule tick `run_id`; return True on success.

    Loads the flow version the tick was created for, with the tick's parameters. With a
    `lease_token`, every write is fenced by it: once another worker has taken the run
    over (its claim has another token), this process's writes are refused, and it stops.

    Raises:
        DurableError: the tick or its registered flow version does not exist.
        StoreError: the lease was lost (see `LeaseLostError`).
    """
    from durable.engine.flow_runner import run_flow_async  # the engine loads to run

    tick = await store.find_scheduled_run(run_id)
    if tick is None:
        raise DurableError(f"No scheduled run {run_id!r}; see: durable worker")
    flow = await _flow_of(store, tick)
    verb, from_tasks = parse_rerun(tick.rerun)
    if tick.crashes:
        # The run crashed before: a task body may be what kills it. Commit each task's
        # checkpoint before the next one starts, so each relaunch keeps what it did.
        store.writer.commit_eagerly()
    if lease_token is not None:
        # The claim names this process from now on, not the worker that launched it:
        # if the worker dies before recording the launch, no other worker mistakes
        # this live run for a dead one.
        pid = os.getpid()
        if not await store.adopt_claim(
            run_id, lease_token, pid=pid, pid_started=process_token(pid)
        ):
            raise LeaseLostError(
                f"Scheduled run {run_id!r} is no longer claimed by the worker that "
                "started this process (lease lost); not running it"
            )
        store.writer.fence = partial(_holds_lease, run_id=run_id, token=lease_token)
    try:
        state = await run_flow_async(
            flow,
            parameters=pickle.loads(tick.parameters),
            run_id=run_id,
            store=store,
            time=time,
            scheduled_start_time=pendulum.from_timestamp(tick.scheduled_for, tz="UTC"),
            restart=from_tasks or verb == RESTART,
        )
    finally:
        if lease_token is not None:
            store.writer.fence = None
    return bool(state.is_successful())


async def _flow_of(store: Store, tick: ScheduledRunRecord) -> Any:
    """The flow a scheduled run runs: its registered version, or, for a re-run of a
    run that `durable run` started (nothing registered), the flow in the run's file."""
    registered = await store.load_registered_flow(tick.flow_name, tick.flow_version)
    if registered is not None:
        return registered.flow
    record = await store.find_flow_run(tick.id) if tick.rerun else None
    if record is None:
        raise DurableError(
            f"Flow {tick.flow_name!r} has no registered version {tick.flow_version}; "
            "register it again"
        )
    if record.source_path is None or not await anyio.Path(record.source_path).is_file():
        raise DurableError(
            f"Run {tick.id!r} was started from a flow file that is gone "
            f"({record.source_path!r}); run it with: durable restart {tick.id} --file PATH"
        )
    from durable.cli.loading import load_flow  # exits with a message if it fails

    return load_flow(record.source_path, tick.flow_name)


EXIT_DISK_FULL = 4
"""A run process's exit code when the disk filled up: the run is given back, not
counted as a crash (`durable.cli.base.EXIT_DISK_FULL`)."""


def run_in_this_process(db: str, run_id: str, lease_token: str | None) -> int:
    """Run a scheduled run in this process, as `durable worker-run` does; return the
    exit code (0 success, 1 the flow run did not succeed, 2 bad input, 3 the database
    is unusable, 4 the disk is full). Errors print one line on stderr."""
    from durable.errors import DiskFullError, StoreError

    async def work() -> bool:
        store = await Store.open(db)
        try:
            return await run_scheduled(store, run_id, SYSTEM_TIME, lease_token)
        finally:
            with anyio.CancelScope(shield=True):
                await store.close()

    try:
        return 0 if anyio.run(work) else 1
    except DurableError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        if isinstance(exc, DiskFullError):
            return EXIT_DISK_FULL
        return 3 if isinstance(exc, StoreError) else 2


def _holds_lease(conn: sqlite3.Connection, run_id: str, token: str) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM scheduled_runs WHERE id = ? AND lease_token = ?"
            " AND status = 'Running'",
            (run_id, token),
        ).fetchone()
        is not None
    )


class InProcessLauncher:
    """Runs each claimed run to its end inside `launch`, on the worker's store and time.

    For tests: a run is one await, with no subprocess, so `run_once` is deterministic.
    """

    def __init__(self, store: Store, time: TimeSource) -> None:
        self.store, self.time = store, time

    async def launch(self, run: ScheduledRunRecord) -> Handle:
        """Run `run` now and return a handle that has already ended."""
        try:
            ok = await run_scheduled(self.store, run.id, self.time)
        except Exception:  # loading the flow runs the user's code; a run's crash
            logger.exception("scheduled run %s could not run", run.id)
            return FinishedHandle(1)
        return FinishedHandle(0 if ok else 1)


class ProcessHandle:
    """A run in a child process."""

    def __init__(self, process: Process) -> None:
        self._process = process
        self.pid = process.pid
        self.token = process_token(process.pid)

    @property
    def returncode(self) -> int | None:
        """The child's exit code, None while it runs."""
        return self._process.returncode

    async def wait(self) -> int:
        """Wait for the child to exit; return its exit code."""
        return await self._process.wait()

    def terminate(self) -> None:
        """Send the child SIGTERM (it exits; its run stays resumable)."""
        if self._process.returncode is None:
            self._process.terminate()

    def kill(self) -> None:
        """Send the child SIGKILL."""
        if self._process.returncode is None:
            self._process.kill()


class SubprocessLauncher:
    """Runs each claimed run in a process of its own: `durable worker-run RUN_ID`."""

    def __init__(self, db: str | Path) -> None:
        self.db = str(db)

    async def launch(self, run: ScheduledRunRecord) -> Handle:
        """Start the child process and return at once."""
        command = [
            sys.executable,
            "-m",
            "durable",
            "--db",
            self.db,
            "worker-run",
            run.id,
        ]
        if run.lease_token is not None:
            command += ["--lease", run.lease_token]
        process = await anyio.open_process(
            command, stdin=None, stdout=None, stderr=None
        )
        logger.info("launched scheduled run %s in process %d", run.id, process.pid)
        return ProcessHandle(process)
