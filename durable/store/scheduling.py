"""Scheduled runs: schedule ticks recorded once, claimed under a lease, released after a
crash. A part of `Store`, kept in a module of its own; the worker drives it.

Every write goes through the checkpoint writer, so each operation below runs inside one
`BEGIN IMMEDIATE` transaction: a claim is a compare-and-set on `claimed_by IS NULL`, and
an operation on a claim is fenced by its lease token (a stale owner changes 0 rows).
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from durable import crashpoints
from durable.store import rows
from durable.store.records import (
    NewScheduledRun,
    SchedulableFlowRecord,
    ScheduledRunRecord,
    Transition,
)
from durable.store.schema import MIGRATIONS, V5, V6, V7
from durable.store.writer import CheckpointWriter

SCHEDULED_RUN_COLUMNS = (
    "id, flow_name, flow_version, scheduled_for, parameters, status, message,"
    " created_at, claimed_by, lease_token, lease_expires_at, pid, pid_started,"
    " launches, crashes, ended_at, kind, claimed_at, rerun"
)

SCHEDULING_SCHEMA, OPERATIONS_SCHEMA, RERUNS_SCHEMA = (
    MIGRATIONS.index(V5) + 1,
    MIGRATIONS.index(V6) + 1,
    MIGRATIONS.index(V7) + 1,
)
"""The first schema versions with scheduled runs, with their kinds, and with re-runs
(older databases, opened read-only and so not migrated, lack them)."""

_CURSOR_SQL = (
    "SELECT COALESCE((SELECT MAX(scheduled_for) FROM scheduled_runs"
    " WHERE flow_name = ? AND kind = 'schedule'), (SELECT MIN(registered_at) FROM flows"
    " WHERE name = ?"
    " AND registered_at IS NOT NULL))"
)


def _record(row: Any) -> ScheduledRunRecord:
    return ScheduledRunRecord(
        id=row[0], flow_name=row[1], flow_version=row[2], scheduled_for=row[3],
        parameters=bytes(row[4]), status=row[5], message=row[6], created_at=row[7],
        claimed_by=row[8], lease_token=row[9], lease_expires_at=row[10], pid=row[11],
        pid_started=row[12], launches=row[13], crashes=row[14], ended_at=row[15],
        kind=row[16], claimed_at=row[17], rerun=row[18],
    )  # fmt: skip


def insert_ticks(
    conn: sqlite3.Connection, ticks: Sequence[NewScheduledRun], kind: str
) -> int:
    """Insert scheduled runs of one kind, each unless its key exists; return how many."""
    before = conn.total_changes
    conn.executemany(
        "INSERT INTO scheduled_runs (id, flow_name, flow_version, scheduled_for,"
        " parameters_hash, parameters, status, message, created_at, kind)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [(t.id, t.flow_name, t.flow_version, t.scheduled_for, t.parameters_hash,
          t.parameters, t.status, t.message, t.created_at, kind) for t in ticks],
    )  # fmt: skip
    return conn.total_changes - before


def _fail_running_task_runs(
    conn: sqlite3.Connection, run_id: str, failed: Transition
) -> None:
    """Fail the task runs a crashed-for-good run left Running: no process will ever
    finish them, and a finished run shows none of its task runs as running."""
    for (task_run_id,) in conn.execute(
        "SELECT id FROM task_runs WHERE flow_run_id = ?"
        " AND state IN ('Running', 'Cancelling')",
        (run_id,),
    ).fetchall():
        conn.execute(
            "UPDATE task_runs SET state = 'Failed', state_message = ?, updated_at = ?,"
            " ended_at = ? WHERE id = ?",
            (failed.message, failed.timestamp, failed.timestamp, task_run_id),
        )
        rows.append_state(conn, run_id, task_run_id, failed)


def _is_paused(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT paused_at FROM flow_settings WHERE name = ?", (name,)
    ).fetchone()
    return row is not None and row[0] is not None


def _cursor(conn: sqlite3.Connection, name: str) -> float | None:
    value = conn.execute(_CURSOR_SQL, (name, name)).fetchone()[0]
    return None if value is None else float(value)


class ScheduledRuns(abc.ABC):
    """Store operations on schedule ticks and the workers' claims on them."""

    @property
    @abc.abstractmethod
    def writer(self) -> CheckpointWriter:
        """The checkpoint writer that every operation goes through."""

    @abc.abstractmethod
    async def _fetch(self, sql: str, args: Iterable[Any]) -> list[Any]:
        """Run a query on the reader connection."""

    async def _write(self, operation: Any) -> Any:
        outcome: list[Any] = []
        self.writer.submit(lambda conn: outcome.append(operation(conn)))
        await self.writer.flush()
        return outcome[0]

    async def list_schedulable_flows(self) -> list[SchedulableFlowRecord]:
        """Return each flow whose latest registered version has a schedule."""
        fetched = await self._fetch(
            "SELECT f.name, f.version, f.source_path, f.schedule, f.catchup,"
            " s.paused_at IS NOT NULL, COALESCE((SELECT MAX(scheduled_for)"
            " FROM scheduled_runs WHERE flow_name = f.name AND kind = 'schedule'),"
            " (SELECT MIN(registered_at) FROM flows WHERE name = f.name))"
            " FROM flows f LEFT JOIN flow_settings s ON s.name = f.name"
            " WHERE f.id = (SELECT id FROM flows WHERE name = f.name"
            " AND registered_at IS NOT NULL ORDER BY version DESC LIMIT 1)"
            " AND f.schedule IS NOT NULL ORDER BY f.name",
            (),
        )
        found = [
            SchedulableFlowRecord(
                name,
                version,
                source,
                bytes(schedule),
                float(cursor),
                catchup=catchup,
                paused=bool(paused),
            )
            for name, version, source, schedule, catchup, paused, cursor in fetched
        ]
        return found

    async def add_scheduled_runs(
        self, flow_name: str, cursor: float, ticks: Sequence[NewScheduledRun]
    ) -> int:
        """Record a flow's new ticks, unless another worker recorded ticks meanwhile.

        A compare-and-set on the flow's cursor: if its newest recorded tick is no longer
        `cursor`, nothing is written (the caller's view is stale; its next pass sees the
        other worker's ticks). The UNIQUE key backs this up: a tick is never stored twice.
        If the flow's schedule is paused (checked in the same transaction), every tick
        is recorded as Skipped.

        Returns:
            How many rows were created.
        """

        def write(conn: sqlite3.Connection) -> int:
            if _cursor(conn, flow_name) != cursor:
                return 0
            if _is_paused(conn, flow_name):
                ticks_ = [replace(t, status="Skipped", message="schedule paused")
                          for t in ticks]  # fmt: skip
                created = insert_ticks(conn, ticks_, "schedule")
            else:
                created = insert_ticks(conn, ticks, "schedule")
            # The cursor is the newest tick: it moves with this same transaction.
            crashpoints.crash_point("after_tick_insert_before_cursor")
            return created

        created: int = await self._write(write)
        return created

    async def claim_due_run(
        self, *, worker: str, token: str, now: float, lease_until: float, pid: int,
        pid_started: str,
    ) -> ScheduledRunRecord | None:  # fmt: skip
        """Claim the oldest due, unclaimed run for `worker`, or return None.

        The claim names the claiming process (`pid`, `pid_started`) until a launch
        records the run's own process, so a worker that dies in between is noticed.
        """

        def write(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                "UPDATE scheduled_runs SET status = 'Running', claimed_by = ?,"
                " lease_token = ?, lease_expires_at = ?, pid = ?, pid_started = ?,"
                " claimed_at = ? WHERE id = (SELECT id FROM scheduled_runs"
                " WHERE status IN ('Scheduled', 'Late') AND scheduled_for <= ?"
                " ORDER BY scheduled_for, id LIMIT 1)"
                f" AND claimed_by IS NULL RETURNING {SCHEDULED_RUN_COLUMNS}",
                (worker, token, lease_until, pid, pid_started, now, now),
            ).fetchone()

        row = await self._write(write)
        if row is None:
            return None
        crashpoints.crash_point("after_claim_commit")
        crashpoints.ack([f"claim {row[0]} {worker}"])
        return _record(row)

    async def record_launch(
        self, run_id: str, token: str, *, pid: int, pid_started: str
    ) -> bool:
        """Record the process a claimed run was launched in; False if the claim is lost."""
        return bool(
            await self._write(
                lambda conn: (
                    conn.execute(
                        "UPDATE scheduled_runs SET pid = ?, pid_started = ?,"
                        " launches = launches + 1 WHERE id = ? AND lease_token = ?",
                        (pid, pid_started, run_id, token),
                    ).rowcount
                )
            )
        )

    async def adopt_claim(
        self, run_id: str, token: str, *, pid: int, pid_started: str
    ) -> bool:
        """Name the run's own process in its claim (it starts by this); False if the
        claim is gone: another worker took the run over and this process must not run
        it."""
        return bool(
            await self._write(
                lambda conn: (
                    conn.execute(
                        "UPDATE scheduled_runs SET pid = ?, pid_started = ?"
                        " WHERE id = ? AND lease_token = ? AND status = 'Running'",
                        (pid, pid_started, run_id, token),
                    ).rowcount
                )
            )
        )

    async def renew_leases(
        self, claims: Sequence[tuple[str, str]], lease_until: float
    ) -> int:
        """Extend the leases of (run id, lease token) claims; return how many held."""

        def write(conn: sqlite3.Connection) -> int:
            return sum(
                conn.execute(
                    "UPDATE scheduled_runs SET lease_expires_at = ? WHERE id = ?"
                    " AND lease_token = ? AND status = 'Running'",
                    (lease_until, run_id, token),
                ).rowcount
                for run_id, token in claims
            )

        renewed: int = await self._write(write)
        return renewed

    async def finish_scheduled_run(
        self, run_id: str, token: str, *, state: str, now: float
    ) -> bool:
        """Mark a claimed run Finished with its flow run's state; False if fenced off."""
        return bool(
            await self._write(
                lambda conn: (
                    conn.execute(
                        "UPDATE scheduled_runs SET status = 'Finished', message = ?,"
                        " ended_at = ?, claimed_by = NULL, lease_expires_at = NULL,"
                        " rerun = NULL"
                        " WHERE id = ? AND lease_token = ? AND status = 'Running'",
                        (state, now, run_id, token),
                    ).rowcount
                )
            )
        )

    async def release_crashed_run(
        self, run_id: str, token: str, *, now: float, reason: str, max_crashes: int
    ) -> str | None:
        """Count a crash of a claimed run: unclaim it to run again, or give up.

        After `max_crashes` crashes the run is Crashed and its flow run (if it started)
        Failed, in the same transaction, instead of being launched forever.

        Returns:
            The run's new status (Scheduled or Crashed), or None if the claim was
            already gone (another worker released it first).
        """

        def write(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT crashes FROM scheduled_runs WHERE id = ? AND lease_token = ?"
                " AND status = 'Running'",
                (run_id, token),
            ).fetchone()
            if row is None:
                return None
            crashes = int(row[0]) + 1
            if crashes < max_crashes:
                conn.execute(
                    "UPDATE scheduled_runs SET status = 'Scheduled', crashes = ?,"
                    " message = ?, claimed_by = NULL, lease_token = NULL,"
                    " lease_expires_at = NULL, pid = NULL, pid_started = NULL"
                    " WHERE id = ?",
                    (crashes, reason, run_id),
                )
                return "Scheduled"
            message = f"crashed {crashes} times (last: {reason}); not run again"
            conn.execute(
                "UPDATE scheduled_runs SET status = 'Crashed', crashes = ?, message = ?,"
                " ended_at = ?, claimed_by = NULL, lease_expires_at = NULL WHERE id = ?",
                (crashes, message, now, run_id),
            )
            failed = Transition("Failed", message, now, {"crashed": crashes}, True)
            if conn.execute(
                "UPDATE flow_runs SET state = 'Failed', state_message = ?,"
                " updated_at = ?, ended_at = ? WHERE id = ?",
                (message, now, now, run_id),
            ).rowcount:
                rows.append_state(conn, run_id, None, failed)
                _fail_running_task_runs(conn, run_id, failed)
            return "Crashed"

        status: str | None = await self._write(write)
        return status

    async def _schema_version(self) -> int:
        return int((await self._fetch("PRAGMA user_version", ()))[0][0])

    async def _columns(self) -> str | None:
        """The scheduled run columns this database has (None: it has no table)."""
        version = await self._schema_version()
        if version >= RERUNS_SCHEMA:
            return SCHEDULED_RUN_COLUMNS
        if version >= OPERATIONS_SCHEMA:
            return SCHEDULED_RUN_COLUMNS.replace("rerun", "NULL")
        if version >= SCHEDULING_SCHEMA:
            return SCHEDULED_RUN_COLUMNS.replace(
                "kind, claimed_at, rerun", "'schedule', NULL, NULL"
            )
        return None

    async def release_claim(self, run_id: str, token: str, *, reason: str) -> bool:
        """Give a claimed run back, not counted as a crash (its worker is stopping);
        any worker claims it again and it resumes. False if the claim was gone."""
        return bool(
            await self._write(
                lambda conn: (
                    conn.execute(
                        "UPDATE scheduled_runs SET status = 'Scheduled', message = ?,"
                        " claimed_by = NULL, lease_token = NULL, lease_expires_at = NULL,"
                        " pid = NULL, pid_started = NULL"
                        " WHERE id = ? AND lease_token = ? AND status = 'Running'",
                        (reason, run_id, token),
                    ).rowcount
                )
            )
        )

    async def find_scheduled_run(self, run_id: str) -> ScheduledRunRecord | None:
        """Return the schedule tick whose run has this id, or None."""
        columns = await self._columns()
        if columns is None:
            return None
        fetched = await self._fetch(
            f"SELECT {columns} FROM scheduled_runs WHERE id = ?", (run_id,)
        )
        return _record(fetched[0]) if fetched else None

    async def list_scheduled_runs(
        self, *, flow_name: str | None = None, status: str | None = None
    ) -> list[ScheduledRunRecord]:
        """Return schedule ticks, oldest first, optionally of one flow or status."""
        columns = await self._columns()
        if columns is None:
            return []
        where, args = rows.where({"flow_name": flow_name, "status": status})
        fetched = await self._fetch(
            f"SELECT {columns} FROM scheduled_runs {where} ORDER BY scheduled_for, id",
            args,
        )
        return [_record(row) for row in fetched]

    async def count_claims(self, worker: str) -> int:
        """Return how many runs `worker` holds claims on."""
        fetched = await self._fetch(
            "SELECT COUNT(*) FROM scheduled_runs WHERE claimed_by = ?"
            " AND status = 'Running'",
            (worker,),
        )
        return int(fetched[0][0])
