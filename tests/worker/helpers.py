"""Launchers for tests: one that holds runs until the test ends them, and one that
crashes a run partway through once before running it for real."""

from __future__ import annotations

import os

import anyio

from durable.liveness import process_token
from durable.store import Store
from durable.store.records import ScheduledRunRecord
from durable.timesource import TimeSource
from durable.worker import Handle, InProcessLauncher, run_scheduled
from durable.worker.launcher import FinishedHandle
from tests.worker import shared


class HeldHandle:
    """A run that 'runs' until the test calls `end`."""

    def __init__(self, token: str | None) -> None:
        self.pid = os.getpid()
        self.token = token or process_token(self.pid)
        self.returncode: int | None = None
        self._done = anyio.Event()

    def end(self, code: int) -> None:
        self.returncode = code
        self._done.set()

    async def wait(self) -> int:
        await self._done.wait()
        return self.returncode or 0

    def terminate(self) -> None:
        self.end(-15)

    def kill(self) -> None:
        self.end(-9)


class HoldingLauncher:
    """Launches nothing: each run is held (its handle claims `token` as its process)."""

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.handles: dict[str, HeldHandle] = {}

    async def launch(self, run: ScheduledRunRecord) -> Handle:
        handle = HeldHandle(self.token)
        self.handles[run.id] = handle
        return handle


class CrashOnceLauncher:
    """Crashes the first launch in its flow's `halt` task, then runs in-process."""

    def __init__(self, store: Store, time: TimeSource) -> None:
        self.store, self.time = store, time
        self.inner = InProcessLauncher(store, time)
        self.crashed = False

    async def launch(self, run: ScheduledRunRecord) -> Handle:
        if self.crashed:
            return await self.inner.launch(run)
        self.crashed = True
        with anyio.CancelScope() as scope:
            shared.HALT.append(scope.cancel)
            await run_scheduled(self.store, run.id, self.time)
        return FinishedHandle(-9)
