"""ProcessExecutor: task bodies in worker processes, with hard timeouts and crash isolation.

Each worker is a `python` process of its own (not a fork, so the flow's threads, event
loop and database connection are never copied) that runs one body at a time and stays for
the next. The flow's process sends it the packed call (`body.pack_call`: cloudpickle) over
a socket pair; the worker streams the body's log records back, then the outcome. Because
the pool knows which process runs which task run:

- a worker that dies (segfault, `os._exit`, OOM kill) fails *that* task run with a
  `WorkerCrashedError` naming the task and the signal or exit code, and is replaced;
- a timeout or a cancelled run kills the worker running the body (a hard timeout).

`concurrent.futures.ProcessPoolExecutor` cannot do either: a dead child breaks the whole
pool (`BrokenProcessPool` for every task in flight), and a running call cannot be stopped.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio import CapacityLimiter, Semaphore

from durable import context
from durable.executors import body, child
from durable.executors.base import WorkerCrashedError

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

logger = logging.getLogger("durable.executors")

REAP_SECONDS = 5.0
"""How long a stopping pool waits for idle workers to exit before killing them."""


class _Worker:
    """One worker process and the flow's end of its connection."""

    def __init__(self, process: subprocess.Popen[bytes], conn: Connection) -> None:
        self.process, self.conn = process, conn

    @classmethod
    def spawn(cls) -> _Worker:
        """Start a worker with this process's import path (its own interpreter)."""
        from multiprocessing import Pipe  # here: `import durable` stays light

        ours, theirs = Pipe(duplex=True)  # a socket pair
        code = (
            f"import sys; sys.path[:] = {sys.path!r}; "
            f"from durable.executors.child import main; main({theirs.fileno()})"
        )
        try:
            process = subprocess.Popen(
                [sys.executable, "-c", code],
                stdin=subprocess.DEVNULL,
                pass_fds=(theirs.fileno(),),
            )
        finally:
            theirs.close()  # the worker holds the only other end: its death is our EOF
        logger.debug("Started worker process %d", process.pid)
        return cls(process, ours)

    @property
    def is_alive(self) -> bool:
        return self.process.poll() is None

    def run(self, data: bytes) -> bytes:
        """Send one call, replay its log lines, and return its outcome (on a thread)."""
        try:
            self.conn.send_bytes(data)
            while True:
                message = self.conn.recv_bytes()
                if message[:1] != child.LOG:
                    return message[1:]
                body.replay(pickle.loads(message[1:]))
        except (EOFError, OSError):
            raise self._crashed() from None

    def _crashed(self) -> WorkerCrashedError:
        try:
            code = self.process.wait(timeout=REAP_SECONDS)
        except subprocess.TimeoutExpired:  # it closed its end but lives on: end it
            self.kill()
            code = self.process.returncode
        return WorkerCrashedError(
            task=body.task_label(),
            task_run_id=context.get("task_run_id"),
            detail=f"its worker process {self.process.pid} {_describe_exit(code)} "
            "while running it; the process is replaced",
        )

    def kill(self) -> None:
        """Kill the process now and reap it."""
        if self.process.poll() is None:
            self.process.kill()
        try:
            self.process.wait(timeout=REAP_SECONDS)
        except (
            subprocess.TimeoutExpired
        ):  # pragma: no cover (a process stuck in D state)
            logger.warning("Worker process %d did not die", self.process.pid)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "stopped answering"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (signal {-code})"
    return f"exited with code {code}"


class _Pool:
    """Up to `size` worker processes, started on demand and reused for a run's bodies."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._slots = Semaphore(size)
        self.threads = CapacityLimiter(size)
        """Threads waiting on workers (one per body in flight)."""

    async def acquire(self) -> _Worker:
        """Take an idle worker, or start one."""
        await self._slots.acquire()
        while self._idle:
            worker = self._idle.pop()
            if worker.is_alive:
                return worker
            self._drop(worker)
        started = False
        try:
            worker = _Worker.spawn()
            started = True
        finally:
            if not started:
                self._slots.release()
        self._workers.add(worker)
        return worker

    def release(self, worker: _Worker) -> None:
        """Give back a worker that finished its body."""
        self._idle.append(worker)
        self._slots.release()

    def discard(self, worker: _Worker) -> None:
        """Kill a worker whose body did not finish (crashed, timed out, cancelled)."""
        worker.kill()
        self._drop(worker)
        self._slots.release()

    def _drop(self, worker: _Worker) -> None:
        self._workers.discard(worker)
        # Its connection closes with its last reference: a thread that was abandoned
        # while waiting on it may still be reading the EOF.

    async def close(self) -> None:
        """Stop every worker: idle ones exit when their connection closes."""
        workers, self._workers, self._idle = list(self._workers), set(), []
        for worker in workers:
            worker.conn.close()
        await anyio.to_thread.run_sync(_reap, workers)


def _reap(workers: list[_Worker]) -> None:
    for worker in workers:
        try:
            worker.process.wait(timeout=REAP_SECONDS)
        except subprocess.TimeoutExpired:
            worker.kill()


class ProcessExecutor:
    """Task bodies in up to `max_workers` worker processes (default: one per CPU).

    Bodies, inputs and context go out with cloudpickle, results, exceptions, signals and
    log records come back; the database stays in the flow's process. A worker that dies
    fails only the task run it was running; a timeout kills the body's process.
    """

    def __init__(self, max_workers: int | None = None) -> None:
        workers = max_workers if max_workers is not None else os.cpu_count() or 1
        if workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {workers}")
        self.max_workers = workers
        """How many task bodies may run at the same time (one process each)."""
        self._pool: _Pool | None = None

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        """Hold a pool of worker processes for the run; stop them all when it ends."""
        if self._pool is not None:  # held already: share it
            yield
            return
        pool = self._pool = _Pool(self.max_workers)
        try:
            yield
        finally:
            self._pool = None
            with anyio.CancelScope(shield=True):  # a cancelled run still stops them
                await pool.close()

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        pool = self._pool
        if pool is None:
            raise RuntimeError(
                "ProcessExecutor.call() outside its start() block: run flows through "
                "flow.run() or the FlowRunner, which start the executor"
            )
        data = body.pack_call(fn, kwargs, is_async)
        worker = await pool.acquire()
        finished = False
        try:
            # Always abandonable: a cancelled wait kills the worker (below), which ends
            # the thread's wait too.
            outcome = await anyio.to_thread.run_sync(
                worker.run, data, abandon_on_cancel=True, limiter=pool.threads
            )
            finished = True
        finally:
            if finished:
                pool.release(worker)
            else:
                pool.discard(worker)
        return body.unpack_outcome(outcome)

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"
