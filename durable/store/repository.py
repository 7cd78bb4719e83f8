"""The store: every read and write of durable's database, as named operations.

Writes from a running flow go through the checkpoint writer (queued, group-committed, in
order); reads go through an aiosqlite connection so the TUI and CLI never block their loop.
The store knows nothing of the engine: it takes and returns plain values and records.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

from durable import crashpoints
from durable.errors import RunNotFoundError, StoreError
from durable.liveness import process_token
from durable.store import rows
from durable.store.connection import (
    ROW_MARGIN,
    Durability,
    GuardedConnection,
    ReadBudget,
    check_access,
    check_existing,
    connect_reader,
    connect_writer,
    ensure_file,
    max_value_bytes,
    migrate,
    open_error,
    resolve_db_path,
)
from durable.store.limits import ConcurrencyLimits
from durable.store.records import (
    CacheEntryRecord,
    FlowRunRecord,
    LogRecord,
    NewCacheEntry,
    NewTaskRun,
    StateRecord,
    TaskRunRecord,
    Transition,
)
from durable.store.registry import FlowRegistry
from durable.store.reruns import Reruns
from durable.store.results import (
    ResultFiles,
    expired_cache_files,
    result_file_of,
    results_directory,
    threshold_from_env,
)
from durable.store.serializers import SERIALIZERS
from durable.store.writer import CheckpointWriter, LogRow

DEFAULT_MAX_VALUE_BYTES = 1_000_000_000 - ROW_MARGIN
"""SQLite's default SQLITE_MAX_LENGTH, less room for a row's other columns."""


class Store(FlowRegistry, Reruns, ConcurrencyLimits):
    """One durable database: a writer thread for checkpoints, a reader for queries.

    Registered flows (`register_flow`, `list_flows`, `load_registered_flow`) come from
    `FlowRegistry`; scheduled runs and the operations on them (trigger, backfill,
    pause, cancel, workers) from `ScheduledRuns` and `Operations`; re-runs and the
    audit log from `Reruns`; task concurrency limits from `ConcurrencyLimits`.
    """

    def __init__(
        self, path: Path, reader: aiosqlite.Connection, writer: CheckpointWriter | None
    ) -> None:
        self.path = path
        """Where the database file is."""
        self._reader = reader
        self._writer = writer
        self._sync_reader: sqlite3.Connection | None = None
        self._sync_lock = threading.Lock()
        self._closed = False
        self._owner: tuple[int, str] | None = None
        self._budget: ReadBudget | None = None  # read-only stores: time per statement
        self.max_value_bytes = DEFAULT_MAX_VALUE_BYTES
        """The largest value (parameters, a result) one row can hold (SQLite's
        SQLITE_LIMIT_LENGTH, less room for the row's other columns)."""
        self.result_files = ResultFiles(results_directory(path), threshold_from_env())
        """Where results above the size threshold go (`<db>.results/`), and the
        threshold (`DURABLE_RESULT_FILE_THRESHOLD`, 1 MiB by default)."""

    @property
    def owner(self) -> tuple[int, str]:
        """This process (pid, start token): recorded on the flow runs it runs."""
        if self._owner is None:
            self._owner = (os.getpid(), process_token(os.getpid()))
        return self._owner

    @classmethod
    async def open(
        cls,
        db: str | Path | None = None,
        *,
        durability: Durability = "full",
        readonly: bool = False,
        max_pending: int = 256,
    ) -> Store:
        """Open (creating and migrating if needed) the database at `db` or the default.

        A database written by a newer durable is refused before anything touches it.
        """
        path = resolve_db_path(db)
        check_access(path, write=not readonly)
        check_existing(path)
        writer, max_value = None, None
        if readonly:
            if not path.exists():
                raise StoreError(
                    f"No database at {str(path)!r}; run a flow first, or pass --db"
                )
        else:
            ensure_file(path)
            conn = connect_writer(path, durability)
            migrate(conn, path)
            max_value = max_value_bytes(conn)
            writer = CheckpointWriter(conn, max_pending=max_pending, path=path)
        # A read-only store is the CLI's, on a database that may be hostile: its rows
        # and its statements are bounded (G6 in RELIABILITY.md).
        budget = ReadBudget() if readonly else None
        guarded: dict[str, Any] = {"factory": GuardedConnection} if readonly else {}
        try:
            reader = await aiosqlite.connect(
                f"file:{path}?mode=ro", uri=True, **guarded
            )
            await reader.execute("PRAGMA busy_timeout=30000")
            await reader.execute("PRAGMA query_only=ON")
            if budget is not None:
                await reader.set_progress_handler(budget, ReadBudget.STEPS)
        except sqlite3.DatabaseError as exc:
            if writer is not None:
                writer.close()
            raise open_error(path, exc) from exc
        store = cls(path, reader, writer)
        store._budget = budget
        if max_value is not None:
            store.max_value_bytes = max_value
            # A result too large for a row goes to a file, whatever the threshold says.
            files = store.result_files
            files.threshold = min(files.threshold, max_value)
        return store

    async def close(self) -> None:
        """Commit what is queued and close every connection."""
        try:
            if self._writer is not None:
                await self._writer.flush()
        finally:
            if self._writer is not None:
                self._writer.close()
            await self._reader.close()
            with self._sync_lock:
                self._closed = True
                if self._sync_reader is not None:
                    self._sync_reader.close()
                    self._sync_reader = None

    @property
    def writer(self) -> CheckpointWriter:
        """The checkpoint writer (a store opened read-only has none)."""
        if self._writer is None:
            raise StoreError(f"Database {str(self.path)!r} was opened read-only")
        return self._writer

    @property
    def results_dir(self) -> Path:
        """Where files beside the database go: relative targets resolve under it."""
        return self.path.parent / "results"

    async def flush(self) -> None:
        """Wait until every queued write is committed."""
        await self.writer.flush()

    async def throttle(self) -> None:
        """Wait while too many writes are in flight."""
        await self.writer.throttle()

    def add_log(self, row: LogRow) -> None:
        """Queue a log line for the next commit."""
        self.writer.add_log(row)

    # Writes ----------------------------------------------------------------------------
    def create_flow_run(
        self,
        *,
        run_id: str,
        flow_name: str,
        fingerprint: str,
        source_path: str | None,
        parameters: bytes,
        parameters_serializer: str,
        transition: Transition,
        task_runs: Sequence[NewTaskRun],
        graph: Callable[[], str] | None = None,
    ) -> None:
        """Queue a new flow run, its flow version and its Pending task runs.

        `graph` returns the flow's shape as JSON; it is called (on the writer thread)
        only if the run creates a new flow version, so it must not depend on anything
        that changes while the run is queued.
        """
        now, (pid, started) = transition.timestamp, self.owner

        def write(conn: sqlite3.Connection) -> None:
            flow_id = rows.flow_version(
                conn, flow_name, fingerprint, source_path, now, graph
            )
            conn.execute(
                "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, source_path,"
                " state, state_message, parameters, parameters_serializer, created_at,"
                " updated_at, pid, pid_started)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, flow_id, flow_name, fingerprint, source_path, transition.name,
                 transition.message, parameters, parameters_serializer, now, now, pid,
                 started),
            )  # fmt: skip
            rows.append_state(conn, run_id, None, transition)
            rows.insert_task_runs(conn, run_id, task_runs, now)

        self.writer.submit(write)

    def add_task_runs(
        self, run_id: str, task_runs: Sequence[NewTaskRun], now: float
    ) -> None:
        """Queue Pending task runs for tasks that a resumed flow has gained."""
        self.writer.submit(
            lambda conn: rows.insert_task_runs(conn, run_id, task_runs, now)
        )

    def record_flow_run_state(self, run_id: str, transition: Transition) -> None:
        """Queue a flow run's state change.

        Running records this process as the run's owner; Cancelled settles a request
        to cancel.
        """
        t, (pid, started) = transition, self.owner
        running = t.name == "Running"

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE flow_runs SET state = ?, state_message = ?, updated_at = ?,"
                " started_at = CASE WHEN ? THEN COALESCE(started_at, ?)"
                " ELSE started_at END, ended_at = CASE WHEN ? THEN ? ELSE NULL END,"
                " pid = CASE WHEN ? THEN ? ELSE pid END,"
                " pid_started = CASE WHEN ? THEN ? ELSE pid_started END,"
                " cancel_requested_at = CASE WHEN ? = 'Cancelled' THEN NULL"
                " ELSE cancel_requested_at END WHERE id = ?",
                (t.name, t.message, t.timestamp, running, t.timestamp, t.finished,
                 t.timestamp, running, pid, running, started, t.name, run_id),
            )  # fmt: skip
            rows.append_state(conn, run_id, None, t)
            if t.name == "Cancelled":
                rows.clear_cancel_request(conn, run_id)

        ack = f"run {run_id} {t.name}" if crashpoints.TRACING else None
        self.writer.submit(write, ack)

    def record_task_state(
        self,
        run_id: str,
        task_run_id: str,
        transition: Transition,
        *,
        attempts: int,
        result: tuple[str, bytes] | None = None,
    ) -> None:
        """Queue a task run's state change, with its result in the same transaction.

        A task is never finished without its result: both commit together. A result
        that names a file (`file:` serializer) must be persisted before this is called;
        the file of a result it replaces is removed once the replacement commits.
        """
        t = transition
        running = t.name == "Running"
        files = self.result_files

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE task_runs SET state = ?, state_message = ?, attempts = ?,"
                " updated_at = ?, has_result = ?,"
                " started_at = CASE WHEN ? THEN COALESCE(started_at, ?) ELSE started_at END,"
                " ended_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?",
                (t.name, t.message, attempts, t.timestamp, result is not None, running,
                 t.timestamp, t.finished, t.timestamp, task_run_id),
            )  # fmt: skip
            rows.append_state(conn, run_id, task_run_id, t)
            if result is not None:
                replaced = result_file_of(conn, task_run_id)
                if replaced is not None:
                    self.writer.after_commit(partial(files.remove, replaced))
                conn.execute(
                    "INSERT INTO results (task_run_id, serializer, value, created_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (task_run_id) DO UPDATE SET"
                    " serializer = excluded.serializer, value = excluded.value,"
                    " created_at = excluded.created_at",
                    (task_run_id, result[0], result[1], t.timestamp),
                )

        ack = None
        if crashpoints.TRACING:
            kind = "task" if result is None else "result"
            ack = f"{kind} {task_run_id} {t.name}"
        self.writer.submit(write, ack)

    def name_task_run(self, task_run_id: str, run_name: str) -> None:
        """Queue the name a task run gets from its task's `task_run_name`."""
        self.writer.submit(
            lambda conn: conn.execute(
                "UPDATE task_runs SET run_name = ? WHERE id = ?",
                (run_name, task_run_id),
            )
        )

    def save_cache_entry(self, entry: NewCacheEntry) -> None:
        """Queue a cached task result, dropping the expired entries of its key.

        The engine queues it just before the task run's Cached state: it commits with
        that state (usually in the same transaction) or before it, never after.
        """
        e, files = entry, self.result_files

        def write(conn: sqlite3.Connection) -> None:
            expired = expired_cache_files(conn, e.cache_key, e.map_index, e.created_at)
            for name in expired:  # removed once the entries' rows are gone for good
                self.writer.after_commit(partial(files.remove, name))
            conn.execute(
                "DELETE FROM cache WHERE cache_key = ? AND map_index = ?"
                " AND expires_at <= ?",
                (e.cache_key, e.map_index, e.created_at),
            )
            conn.execute(
                "INSERT INTO cache (cache_key, map_index, flow_run_id, task_run_id,"
                " serializer, value, hashed_inputs, hashed_parameters, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (e.cache_key, e.map_index, e.flow_run_id, e.task_run_id, e.serializer,
                 e.value, json.dumps(e.hashed_inputs), json.dumps(e.hashed_parameters),
                 e.created_at, e.expires_at),
            )  # fmt: skip

        self.writer.submit(write)

    # Reads -----------------------------------------------------------------------------
    async def find_flow_run(self, run_id: str) -> FlowRunRecord | None:
        """Return the flow run with exactly this id, or None."""
        fetched = await self._fetch(
            f"SELECT {rows.FLOW_RUN_COLUMNS} FROM flow_runs r JOIN flows f ON f.id = r.flow_id"
            " WHERE r.id = ?",
            (run_id,),
        )
        return FlowRunRecord(*fetched[0]) if fetched else None

    async def get_flow_run(self, run_id: str) -> FlowRunRecord:
        """Return the flow run with this id, or the only one whose id starts with it."""
        fetched = await self._fetch(
            f"SELECT {rows.FLOW_RUN_COLUMNS} FROM flow_runs r JOIN flows f ON f.id = r.flow_id"
            " WHERE r.id >= ? AND r.id < ? ORDER BY r.id = ? DESC LIMIT 2",
            (run_id, run_id + "\uffff", run_id),
        )
        if not fetched or not fetched[0][0].startswith(run_id):
            raise RunNotFoundError(run_id)
        if fetched[0][0] != run_id and len(fetched) > 1:
            raise RunNotFoundError(run_id, detail="that prefix matches several runs")
        return FlowRunRecord(*fetched[0])

    async def list_flow_runs(
        self, *, flow_name: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[FlowRunRecord]:
        """Return the newest flow runs first, optionally of one flow or in one state."""
        where, args = rows.where({"r.flow_name": flow_name, "r.state": state})
        fetched = await self._fetch(
            f"SELECT {rows.FLOW_RUN_COLUMNS} FROM flow_runs r JOIN flows f ON f.id = r.flow_id"
            f" {where} ORDER BY r.created_at DESC, r.id LIMIT ?",
            (*args, limit),
        )
        return [FlowRunRecord(*row) for row in fetched]

    async def list_task_runs(self, run_id: str) -> list[TaskRunRecord]:
        """Return a flow run's task runs, in the order they were created."""
        fetched = await self._fetch(
            f"SELECT {rows.TASK_RUN_COLUMNS} FROM task_runs WHERE flow_run_id = ? ORDER BY rowid",
            (run_id,),
        )
        return [rows.task_run(row) for row in fetched]

    async def list_states(self, run_id: str) -> list[StateRecord]:
        """Return every transition of a flow run and its task runs, oldest first."""
        fetched = await self._fetch(
            "SELECT id, flow_run_id, task_run_id, name, message, timestamp, details"
            " FROM states WHERE flow_run_id = ? ORDER BY id",
            (run_id,),
        )
        return [rows.state(row) for row in fetched]

    async def latest_details(
        self, task_run_ids: Sequence[str], *, name: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Return the details of each task run's latest state (of that name, if given).

        Task runs without such a state are left out.
        """
        found: dict[str, dict[str, Any]] = {}
        only = "" if name is None else " AND name = ?"
        for start in range(0, len(task_run_ids), 500):
            chunk = list(task_run_ids[start : start + 500])
            marks = ", ".join("?" * len(chunk))
            fetched = await self._fetch(
                "SELECT task_run_id, details FROM states WHERE id IN (SELECT MAX(id)"
                f" FROM states WHERE task_run_id IN ({marks}){only} GROUP BY task_run_id)",
                [*chunk, *([name] if name else [])],
            )
            found.update(
                (row[0], json.loads(row[1]) if row[1] else {}) for row in fetched
            )
        return found

    async def find_cache_entries(
        self, cache_key: str, map_index: int, *, now: float, limit: int = 100
    ) -> list[CacheEntryRecord]:
        """Return the unexpired cache entries of a key and map index, newest first."""
        fetched = await self._fetch(
            "SELECT id, cache_key, map_index, flow_run_id, task_run_id, serializer,"
            " hashed_inputs, hashed_parameters, created_at, expires_at FROM cache"
            " WHERE cache_key = ? AND map_index = ? AND expires_at > ?"
            " ORDER BY created_at DESC, id DESC LIMIT ?",
            (cache_key, map_index, now, limit),
        )
        return [rows.cache_entry(row) for row in fetched]

    async def load_cache_value(self, entry_id: int) -> tuple[str, bytes] | None:
        """Return a cache entry's (serializer name, value bytes), or None if it is gone."""
        fetched = await self._fetch(
            "SELECT serializer, value FROM cache WHERE id = ?", (entry_id,)
        )
        return (fetched[0][0], bytes(fetched[0][1])) if fetched else None

    async def list_logs(
        self, run_id: str, *, after_id: int = 0, limit: int = 10_000
    ) -> list[LogRecord]:
        """Return a flow run's log lines with ids above `after_id`, oldest first."""
        fetched = await self._fetch(
            "SELECT id, flow_run_id, task_run_id, timestamp, level, logger, message"
            " FROM logs WHERE flow_run_id = ? AND id > ? ORDER BY id LIMIT ?",
            (run_id, after_id, limit),
        )
        return [LogRecord(*row) for row in fetched]

    async def load_parameters(self, run_id: str) -> dict[str, Any]:
        """Return the parameters a flow run was started with."""
        fetched = await self._fetch(
            "SELECT parameters, parameters_serializer FROM flow_runs WHERE id = ?",
            (run_id,),
        )
        if not fetched:
            raise RunNotFoundError(run_id)
        value: dict[str, Any] = SERIALIZERS[fetched[0][1]].loads(fetched[0][0])
        return value

    async def read_parameters(self, run_id: str) -> dict[str, Any] | int:
        """Return a flow run's parameters if stored as JSON, else their size in bytes.

        For readers (CLI, TUI) of a database that may not be trusted: never unpickles.
        """
        fetched = await self._fetch(
            "SELECT parameters, parameters_serializer FROM flow_runs WHERE id = ?",
            (run_id,),
        )
        if not fetched:
            raise RunNotFoundError(run_id)
        data, serializer = fetched[0]
        if serializer != "json":
            return len(data)
        value: dict[str, Any] = json.loads(data)
        return value

    def load_result(self, task_run_id: str) -> Any:
        """Read and deserialize a task run's stored result (synchronous, any thread).

        Works after the store is closed too (a flow's final state loads results lazily,
        possibly long after its run), through a connection of its own.
        """
        with self._sync_lock:
            if self._closed:
                conn = connect_reader(self.path)
                try:
                    row = rows.select_result(conn, task_run_id)
                finally:
                    conn.close()
            else:
                if self._sync_reader is None:
                    self._sync_reader = connect_reader(self.path)
                row = rows.select_result(self._sync_reader, task_run_id)
        if row is None:
            raise StoreError(f"Task run {task_run_id!r} has no stored result")
        # Read outside the lock: a result file may take seconds to load.
        return self.result_files.load(row[0], row[1])

    async def is_cancel_requested(self, run_id: str) -> bool:
        """Whether someone asked (`durable cancel`) for this run to stop."""
        fetched = await self._fetch(
            "SELECT EXISTS (SELECT 1 FROM flow_runs WHERE id = ?"
            " AND cancel_requested_at IS NOT NULL) OR EXISTS (SELECT 1 FROM"
            " scheduled_runs WHERE id = ? AND cancel_requested_at IS NOT NULL)",
            (run_id, run_id),
        )
        return bool(fetched[0][0])

    async def _fetch(self, sql: str, args: Iterable[Any]) -> list[Any]:
        if self._budget is not None:
            self._budget.start()
        try:
            return list(await self._reader.execute_fetchall(sql, tuple(args)))
        except sqlite3.DatabaseError as exc:
            raise open_error(self.path, exc, "read") from exc
