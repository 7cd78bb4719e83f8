"""Rows and statements of the store: column lists, row-to-record conversion, and the
statements that several writes share. SQL stays in `durable.store`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from durable.store.records import (
    CacheEntryRecord,
    NewRegistration,
    NewTaskRun,
    RegisteredVersion,
    StateRecord,
    TaskRunRecord,
    Transition,
)

FLOW_RUN_COLUMNS = (
    "r.id, r.flow_name, f.version, r.fingerprint, r.source_path, r.state, "
    "r.state_message, r.created_at, r.started_at, r.ended_at, r.updated_at"
)
TASK_RUN_COLUMNS = (
    "id, flow_run_id, task_slug, task_name, map_index, state, state_message, attempts, "
    "has_result, started_at, ended_at, updated_at, run_name"
)


def details_json(details: dict[str, Any] | None) -> str | None:
    return json.dumps(details) if details else None


def cache_entry(row: Any) -> CacheEntryRecord:
    return CacheEntryRecord(
        id=row[0], cache_key=row[1], map_index=row[2], flow_run_id=row[3],
        task_run_id=row[4], serializer=row[5], hashed_inputs=json.loads(row[6]),
        hashed_parameters=json.loads(row[7]), created_at=row[8], expires_at=row[9],
    )  # fmt: skip


def task_run(row: Any) -> TaskRunRecord:
    # Positional, in TASK_RUN_COLUMNS order: a resume reads one per task run, and keyword
    # arguments cost a third more.
    return TaskRunRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], row[6], row[7], bool(row[8]),
        row[9], row[10], row[11], row[12],
    )  # fmt: skip


def state(row: Any) -> StateRecord:
    return StateRecord(
        id=row[0], flow_run_id=row[1], task_run_id=row[2], name=row[3], message=row[4],
        timestamp=row[5], details=json.loads(row[6]) if row[6] else None,
    )  # fmt: skip


def select_result(conn: sqlite3.Connection, task_run_id: str) -> Any:
    return conn.execute(
        "SELECT serializer, value FROM results WHERE task_run_id = ?", (task_run_id,)
    ).fetchone()


def flow_version(
    conn: sqlite3.Connection,
    name: str,
    fingerprint: str,
    source: str | None,
    now: float,
    graph: Callable[[], str] | None = None,
) -> int:
    # A flow gets a new version whenever its structure changes. The latest version may
    # be a registration (`register_version`): a run of that flow, same shape, is one of
    # its runs, so a worker's runs of a registered flow share the registered version.
    # `graph` (the flow's shape) is computed only when a version is created, or once
    # for a version stored without one: a run of an existing version pays nothing.
    row = conn.execute(
        "SELECT id, version, fingerprint, graph IS NULL FROM flows WHERE name = ?"
        " ORDER BY version DESC LIMIT 1",
        (name,),
    ).fetchone()
    if row is not None and row[2] == fingerprint:
        if row[3] and graph is not None:
            conn.execute("UPDATE flows SET graph = ? WHERE id = ?", (graph(), row[0]))
        return int(row[0])
    version = 1 if row is None else row[1] + 1
    cursor = conn.execute(
        "INSERT INTO flows (name, version, fingerprint, source_path, created_at, graph)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (name, version, fingerprint, source, now, None if graph is None else graph()),
    )
    return int(cursor.lastrowid or 0)


def register_version(
    conn: sqlite3.Connection, new: NewRegistration
) -> RegisteredVersion:
    # Idempotent, as Prefect 1's registration: if the latest version is a registration of
    # the same flow (same fingerprint and hash), it stays the latest. Anything else (a
    # changed flow, or a latest version that a run created and that holds no copy) is
    # version N + 1; a run's row is never rewritten into a registration (only given its
    # graph if it was stored without one).
    row = conn.execute(
        "SELECT version, fingerprint, flow_hash, registered_at, id, graph IS NULL,"
        " parameters IS NULL FROM flows WHERE name = ? ORDER BY version DESC LIMIT 1",
        (new.name,),
    ).fetchone()
    same = row is not None and (row[1], row[2]) == (new.fingerprint, new.flow_hash)
    if same and row[3] is not None:
        if row[5] and new.graph is not None:
            conn.execute("UPDATE flows SET graph = ? WHERE id = ?", (new.graph, row[4]))
        if row[6] and new.parameters is not None:
            conn.execute(
                "UPDATE flows SET parameters = ? WHERE id = ?", (new.parameters, row[4])
            )
        return RegisteredVersion(new.name, int(row[0]), is_new=False)
    version = 1 if row is None else int(row[0]) + 1
    conn.execute(
        "INSERT INTO flows (name, version, fingerprint, source_path, created_at,"
        " registered_at, flow_blob, flow_hash, schedule, schedule_text, catchup, graph,"
        " parameters) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (new.name, version, new.fingerprint, new.source_path, new.registered_at,
         new.registered_at, new.flow_blob, new.flow_hash, new.schedule,
         new.schedule_text, new.catchup, new.graph, new.parameters),
    )  # fmt: skip
    return RegisteredVersion(new.name, version, is_new=True)


def append_state(
    conn: sqlite3.Connection, run_id: str, task_run_id: str | None, t: Transition
) -> None:
    conn.execute(
        "INSERT INTO states (flow_run_id, task_run_id, name, message, timestamp, details)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, task_run_id, t.name, t.message, t.timestamp, details_json(t.details)),
    )


def insert_task_runs(
    conn: sqlite3.Connection, run_id: str, task_runs: Sequence[NewTaskRun], now: float
) -> None:
    conn.executemany(
        "INSERT INTO task_runs (id, flow_run_id, task_slug, task_name, map_index, state,"
        " updated_at) VALUES (?, ?, ?, ?, ?, 'Pending', ?)",
        [(t.id, run_id, t.slug, t.name, t.map_index, now) for t in task_runs],
    )


def where(conditions: dict[str, Any]) -> tuple[str, list[Any]]:
    """Build `WHERE col = ? AND ...` from the conditions whose value is not None.

    Column names come from durable's own code, never from input; values are bound.
    """
    used = {column: value for column, value in conditions.items() if value is not None}
    clause = " AND ".join(f"{column} = ?" for column in used)
    return (f"WHERE {clause}" if clause else ""), list(used.values())


def clear_cancel_request(conn: sqlite3.Connection, run_id: str) -> None:
    """Forget a cancel request once its run is Cancelled (a restart must not see it)."""
    conn.execute(
        "UPDATE scheduled_runs SET cancel_requested_at = NULL WHERE id = ?"
        " AND cancel_requested_at IS NOT NULL",
        (run_id,),
    )
