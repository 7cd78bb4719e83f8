"""Starting runs fast: a fork server that has imported the engine once, and forks a
process per run.

A new Python process per run pays ~0.45 s and ~0.6 CPU-seconds of interpreter start and
imports before its first task (bench/scheduling.py); a fork of a warm process pays
~60 ms. Each run still gets a process of its own (a crash or a leak stays in it), in
the worker's process group (a kill of the group stops the runs too), with the same
lease fencing as `durable worker-run`.

The server is single-threaded and opens no database: forking is only safe from a
process without threads or open SQLite connections. Protocol, one line each:
worker → server on stdin ``run RUN_ID LEASE``; server → worker on a pipe of its own
``started RUN_ID PID`` and ``exit PID CODE``. The server's (and the runs') stdout and
stderr are the worker's. When the worker goes away (stdin closes) the server exits;
its runs go on and are settled by whichever worker sees them end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import sys
from datetime import timedelta
from pathlib import Path
from typing import Self

import anyio
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.buffered import BufferedByteReceiveStream

from durable.liveness import Liveness, liveness, process_token
from durable.store.records import ScheduledRunRecord
from durable.timesource import SYSTEM_TIME

logger = logging.getLogger(__name__)

REAP_INTERVAL = 0.05
"""Seconds between two checks of the server for runs that have ended."""
REAP_EVERY = timedelta(seconds=REAP_INTERVAL)


class ForkedHandle:
    """A run in a process forked by the server."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.token = process_token(pid)
        self._code: int | None = None
        self._ended = anyio.Event()
        self.orphaned = False
        """Set when the server died: the exit code is lost; /proc tells the end."""

    @property
    def returncode(self) -> int | None:
        """The exit code once the run has ended (-1 if it ended unseen), else None."""
        orphan = self._code is None and self.orphaned
        if orphan and liveness(self.pid, self.token) is not Liveness.ALIVE:
            self.ended(-1)
        return self._code

    def ended(self, code: int) -> None:
        """Record the run's exit code (the server saw it end)."""
        if self._code is None:
            self._code = code
            self._ended.set()

    async def wait(self) -> int:
        """Wait for the run to end; return its exit code."""
        while not self._ended.is_set():
            if self.orphaned:
                if self.returncode is not None:
                    break
                await SYSTEM_TIME.sleep_until(SYSTEM_TIME.now() + REAP_EVERY)
            else:
                with anyio.move_on_after(1):
                    await self._ended.wait()
        return self._code if self._code is not None else -1

    def terminate(self) -> None:
        """Send the run SIGTERM."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        """Send the run SIGKILL."""
        self._signal(signal.SIGKILL)

    def _signal(self, number: int) -> None:
        if self._code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, number)


class ForkServerLauncher:
    """Launches each claimed run as a fork of a warm server process.

    Use it as an async context manager: it starts the server and a task reading its
    reports, and stops both on exit. A server that dies is started again at the next
    launch; the runs it had forked are watched through /proc.
    """

    def __init__(self, db: str | Path) -> None:
        self.db = str(db)
        self._process: Process | None = None
        self._handles: dict[int, ForkedHandle] = {}
        self._started: dict[str, anyio.Event] = {}
        self._pids: dict[str, int] = {}
        self._group: anyio.abc.TaskGroup | None = None
        self._closing = False
        """Set on exit: the server then stops on purpose, which is not worth a warning."""

    async def __aenter__(self) -> Self:
        self._group = anyio.create_task_group()
        await self._group.__aenter__()
        await self._server()  # warm before the first run needs it
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._group is not None
        self._closing = True
        if self._process is not None:
            with anyio.CancelScope(shield=True):
                await self._stop_server(self._process)
        self._group.cancel_scope.cancel()
        await self._group.__aexit__(None, None, None)

    @staticmethod
    async def _stop_server(process: Process) -> None:
        if process.stdin is not None:
            with contextlib.suppress(
                anyio.BrokenResourceError, anyio.ClosedResourceError
            ):
                await process.stdin.aclose()  # the server exits; runs go on
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
        await process.aclose()

    async def launch(self, run: ScheduledRunRecord) -> ForkedHandle:
        """Ask the server for a fork running `run`; return once it has started."""
        process = await self._server()
        assert process.stdin is not None
        started = self._started[run.id] = anyio.Event()
        request = f"run {run.id} {run.lease_token or '-'}\n"
        await process.stdin.send(request.encode())
        with anyio.fail_after(30):
            await started.wait()
        del self._started[run.id]
        pid = self._pids.pop(run.id)
        handle = self._handles[pid] = ForkedHandle(pid)
        logger.info("launched scheduled run %s in forked process %d", run.id, pid)
        return handle

    async def _server(self) -> Process:
        if self._process is not None and self._process.returncode is None:
            return self._process
        assert self._group is not None, "use ForkServerLauncher in `async with`"
        try:
            out = os.dup(sys.stdout.fileno())
        except (AttributeError, OSError, ValueError):  # stdout is not a file (tests)
            out = os.dup(1)
        reports_read, reports_write = os.pipe()
        try:
            self._process = await anyio.open_process(
                [sys.executable, "-m", "durable.worker.forkserver", self.db, str(out),
                 str(reports_write)],
                stdin=-1, stdout=None, stderr=None, pass_fds=(out, reports_write),
            )  # fmt: skip
        finally:
            os.close(out)
            os.close(reports_write)
        self._group.start_soon(self._read_reports, reports_read)
        return self._process

    async def _read_reports(self, fd: int) -> None:
        stream = BufferedByteReceiveStream(_FdStream(fd))
        try:
            while True:
                line = (await stream.receive_until(b"\n", 1024)).decode().split()
                if line[0] == "started":
                    self._pids[line[1]] = int(line[2])
                    self._started[line[1]].set()
                elif line[0] == "exit":
                    handle = self._handles.pop(int(line[1]), None)
                    if handle is not None:
                        handle.ended(int(line[2]))
        except (anyio.EndOfStream, anyio.IncompleteRead, OSError):
            if not self._closing:
                logger.warning(
                    "the worker's fork server stopped; it restarts on demand"
                )
            for handle in self._handles.values():
                handle.orphaned = True
            self._handles.clear()
        finally:
            os.close(fd)


class _FdStream(ByteReceiveStream):
    """Reads a pipe without blocking the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while True:
            try:
                data = os.read(self.fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self.fd)
                continue
            if not data:
                raise anyio.EndOfStream
            return data

    async def aclose(self) -> None:
        """The reader closes the descriptor itself."""


# The server process --------------------------------------------------------------------
def serve(db: str, out: int, reports: int) -> None:
    """Fork a run per request on stdin until stdin closes; report starts and exits."""
    os.dup2(out, 1)  # the runs print where the worker prints
    os.close(out)

    selector = selectors.DefaultSelector()
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ)
    pending = b""
    while True:
        if selector.select(timeout=REAP_INTERVAL):
            data = os.read(sys.stdin.fileno(), 65536)
            if not data:
                return  # the worker is gone
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                _, run_id, lease = line.decode().split()
                pid = _fork_run(db, run_id, None if lease == "-" else lease, reports)
                os.write(reports, f"started {run_id} {pid}\n".encode())
        _reap(reports)


def _reap(reports: int) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        os.write(reports, f"exit {pid} {code}\n".encode())


def _fork_run(db: str, run_id: str, lease: str | None, reports: int) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:  # the child: what `durable worker-run` does, minus the interpreter start
        os.close(reports)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        from durable.worker.launcher import run_in_this_process

        code = run_in_this_process(db, run_id, lease)
    except BaseException:
        logging.getLogger(__name__).exception("scheduled run %s failed", run_id)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker decides (as worker-run)
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
