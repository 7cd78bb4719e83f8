"""Real worker processes for the crash tests: register a flow file, start `durable worker`
in a process group of its own, kill that group, and read the database while they run.

Waits on real processes poll through `SYSTEM_TIME` and `threading.Event().wait`, as the
end-to-end tests do (nothing here may call time.sleep)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio

from durable.cli.loading import load_flows
from durable.core.flow import Flow
from durable.store import Store
from durable.store.packaging import package_flow
from durable.timesource import SYSTEM_TIME

T = TypeVar("T")


def register_file(db: Path, path: Path, *, registered_at: float) -> dict[str, Flow]:
    """Register every flow of `path` as if `durable register` had run at `registered_at`.

    Returns:
        The flows, by name, as loaded in this process (their schedules are the oracle).
    """
    flows = load_flows(str(path))

    async def save() -> None:
        store = await Store.open(db)
        try:
            for flow in flows.values():
                new = package_flow(flow, file=path, registered_at=registered_at)
                await store.register_flow(new)
        finally:
            await store.close()

    anyio.run(save)
    return flows


def read(db: Path, query: Callable[[Store], Awaitable[T]]) -> T:
    """Run `query` on a read-only store of `db` (what a test reads while workers run)."""

    async def run() -> T:
        store = await Store.open(db, readonly=True)
        try:
            return await query(store)
        finally:
            await store.close()

    return anyio.run(run)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `condition` every 20 ms until it holds; fail naming `what` after `timeout`."""
    deadline = SYSTEM_TIME.timestamp() + timeout
    while not condition():
        assert SYSTEM_TIME.timestamp() < deadline, f"timed out after {timeout}s: {what}"
        pause(0.02)


def pause(seconds: float) -> None:
    """Block this thread for `seconds` of real time (a real process is being watched)."""
    threading.Event().wait(seconds)


def start_worker(db: Path, cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    """Start `durable worker --poll 0.1 ARGS` as the leader of a new process group.

    Its run processes join its group, so `kill_group` kills the worker and its runs at
    once; their output goes to `worker.log` in `cwd`. Python caches bytecode under
    `cwd` (even where PYTHONDONTWRITEBYTECODE is set), as an installed durable has it:
    otherwise every process compiles durable's modules again, about 0.15 s of CPU
    each, and the timings measured would not be an installation's.
    """
    command = [sys.executable, "-m", "durable", "--db", str(db), "worker"]
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(cwd / "pycache")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    with (cwd / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [*command, "--poll", "0.1", *args],
            stdout=log, stderr=log, cwd=cwd, env=env, start_new_session=True,
        )  # fmt: skip


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker's process group (the worker and its runs) and reap the worker."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the group is already gone
        pass
    process.wait()


def stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """Kill the process group of each of `processes` not yet reaped (teardown).

    A reaped worker is skipped: its group was killed, or it exited after waiting for
    its runs, and its pid may already belong to another process.
    """
    for process in processes:
        if process.returncode is None:
            kill_group(process)


def log_of(cwd: Path) -> str:
    """The workers' combined output, for failure messages."""
    path = cwd / "worker.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""
