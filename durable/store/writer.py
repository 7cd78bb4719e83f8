"""The checkpoint writer: one thread that owns the writer connection and group-commits.

The engine queues write operations without waiting; the thread takes everything queued so
far and commits it in one `BEGIN IMMEDIATE` transaction, in queue order. Commits are
therefore ordered (an upstream's checkpoint is never durable after its downstream's) and a
fast chain of tasks pays for one fsync per batch, not per task. The engine waits only when
it needs durability (`flush`) and when too much is in flight (`throttle`): more than
`max_pending` writes, or any write older than `max_lag` seconds. The age bound matters when
task bodies keep the CPU busy: the writer thread then wins the GIL back only every few
milliseconds per statement, and without the bound its commits fall far behind the tasks
(and a crash would make all those tasks run again).

The thread never calls into the event loop: waiting goes through one `anyio.to_thread` hop,
so a task body that holds the loop cannot stall commits.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import deque
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread

from durable import crashpoints
from durable.errors import DiskFullError, LeaseLostError, StoreError
from durable.store.connection import damage_advice, is_damage, transaction
from durable.timesource import monotonic

logger = logging.getLogger(__name__)

Operation = Callable[[sqlite3.Connection], object]
"""One write: statements to run inside the batch's transaction (no user code)."""

LogRow = tuple[str | None, str | None, float, int, str, str]
"""(flow_run_id, task_run_id, timestamp, level, logger, message)"""

INSERT_LOG = (
    "INSERT INTO logs (flow_run_id, task_run_id, timestamp, level, logger, message)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)


class CheckpointWriter:
    """Commits queued operations in order, in batches, on a thread of its own."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        max_pending: int = 256,
        max_lag: float = 0.05,
        log_interval: float = 0.25,
        clock: Callable[[], float] = monotonic,
        path: Path | None = None,
    ) -> None:
        self._conn = conn
        self._path = path  # for error messages
        self._max_pending, self._max_lag = max_pending, max_lag
        self._log_interval = log_interval
        self._clock = clock
        self._pending_since: float | None = None  # when the oldest pending write came
        self._queue: list[Operation] = []
        self._acks: list[tuple[int, str]] = []  # (sequence, ACK line): tests only
        self._logs: deque[LogRow] = deque()
        self._cond = threading.Condition()
        self._submitted = 0
        self._committed = 0
        self._error: BaseException | None = None
        self._stopping = False
        self._after_commit: list[Callable[[], object]] = []  # the writer thread's own
        self.fence: Callable[[sqlite3.Connection], bool] | None = None
        """Checked first in every transaction: if it returns False, the transaction
        is rolled back and the writer stops (another process owns the run now)."""
        self.commit_each = False
        """Bench-only knob (bench/group_commit.py): commit each queued operation in a
        transaction of its own instead of the whole queue in one, to measure what
        group commit is worth. Ordering and durability are the same either way."""
        self._thread = threading.Thread(
            target=self._loop, name="durable-checkpoint-writer", daemon=True
        )
        self._thread.start()

    # Called from the engine's thread -------------------------------------------------
    def submit(self, operation: Operation, ack: str | None = None) -> int:
        """Queue one write; return its sequence number. Never blocks on the database.

        `ack` describes the write for the reliability tests (`durable.crashpoints`):
        `"<kind> <id> <state>"`, written as an ACK line once the write commits. Callers
        pass it only when `crashpoints.TRACING` is on.
        """
        with self._cond:
            self._raise_if_failed()
            if self._submitted == self._committed:
                self._pending_since = self._clock()
            self._queue.append(operation)
            self._submitted += 1
            if ack is not None:
                self._acks.append((self._submitted, ack))
            self._cond.notify()
            return self._submitted

    def commit_eagerly(self) -> None:
        """Make `throttle` wait until every queued write has committed, so no finished
        task run's checkpoint is in flight when the next task body starts.

        For a run that crashed before: if one of its task bodies kills the process (a
        poison pill), the task runs that finished before it are not lost with it again.
        """
        self._max_lag = 0.0

    def after_commit(self, callback: Callable[[], object]) -> None:
        """Run `callback` once the transaction being written commits (never if it fails).

        Called by an operation, on the writer thread: for work that must follow the
        commit, such as removing a result file that the commit stopped naming.
        """
        self._after_commit.append(callback)

    def add_log(self, row: LogRow) -> None:
        """Queue one log row for the next batch (any thread; never blocks)."""
        self._logs.append(row)

    @property
    def pending(self) -> int:
        """How many queued writes are not committed yet."""
        return self._submitted - self._committed

    async def throttle(self) -> None:
        """Wait while too much is in flight: this bounds the work a crash can lose."""
        pending = self._submitted - self._committed
        if pending > self._max_pending:
            await anyio.to_thread.run_sync(
                self.wait, self._submitted - self._max_pending // 2
            )
        elif pending and self._is_lagging():
            await anyio.to_thread.run_sync(self.wait, self._submitted)
        elif self._error is not None:
            self._raise_if_failed()

    def _is_lagging(self) -> bool:
        since = self._pending_since
        return since is not None and self._clock() - since > self._max_lag

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        if self._committed < self._submitted or self._error is not None:
            await anyio.to_thread.run_sync(self.wait, self._submitted)

    def wait(self, seq: int) -> None:
        """Block until write `seq` is committed; raise StoreError if writing failed."""
        with self._cond:
            while self._committed < seq and self._error is None:
                self._cond.wait()
            self._raise_if_failed()

    def close(self) -> None:
        """Commit what is queued (logs included), stop the thread, close the connection."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join()
        self._conn.close()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error = self._error
            if getattr(error, "sqlite_errorname", "") == "SQLITE_FULL":
                raise DiskFullError(
                    f"Writing to the database failed: {error} (disk full, or the "
                    "database at its size limit); nothing of the failed write was "
                    "recorded: free some space, then resume the run"
                ) from error
            if self._path is not None and is_damage(error):
                raise StoreError(
                    f"Writing to database {str(self._path)!r} failed: it is damaged "
                    f"({error}); {damage_advice(self._path)}"
                ) from error
            raise StoreError(f"Writing to the database failed: {error}") from error

    # The writer thread -----------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._cond:
                if not self._queue and not self._stopping:
                    self._cond.wait(self._log_interval)
                if self.commit_each and self._queue:
                    batch, self._queue = self._queue[:1], self._queue[1:]
                else:
                    batch, self._queue = self._queue, []
                last = self._committed + len(batch)
                stopping = self._stopping
                acks: list[str] = []
                if self._acks:
                    acks = [line for seq, line in self._acks if seq <= last]
                    self._acks = [(seq, line) for seq, line in self._acks if seq > last]
            logs = [self._logs.popleft() for _ in range(len(self._logs))]
            if batch or logs:
                try:
                    transaction(
                        self._conn,
                        partial(self._write, batch=batch, logs=logs, fence=self.fence,
                                acks=acks),
                    )  # fmt: skip
                except BaseException as exc:  # noqa: BLE001 (reported to every waiter)
                    logger.error("checkpoint write failed: %s", exc)
                    with self._cond:
                        self._error = exc
                        self._cond.notify_all()
                    return
                if acks:
                    if any(line.startswith("result ") for line in acks):
                        crashpoints.crash_point("after_result_commit_before_ack")
                    crashpoints.ack(acks)
                self._run_after_commit()
                with self._cond:
                    self._committed = last
                    # What is still queued arrived at the latest now: age it from here.
                    pending = self._submitted > last
                    self._pending_since = self._clock() if pending else None
                    self._cond.notify_all()
            if stopping and not self._queue:
                return

    def _run_after_commit(self) -> None:
        # Before the waiters wake: once `flush` returns, the callbacks have run.
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 (the commit stands; log and go on)
                logger.warning("after-commit step failed: %s", exc)

    @staticmethod
    def _write(
        conn: sqlite3.Connection, batch: list[Operation], logs: list[Any],
        fence: Callable[[sqlite3.Connection], bool] | None, acks: list[str],
    ) -> None:  # fmt: skip
        if fence is not None and not fence(conn):
            raise LeaseLostError(
                "lease lost: another worker has taken over this run; nothing more is "
                "written by this process"
            )
        for operation in batch:
            operation(conn)
        if logs:
            conn.executemany(INSERT_LOG, logs)
        if acks and any(line.startswith("result ") for line in acks):
            crashpoints.crash_point("before_result_commit")
