"""Operations on scheduled pipelines: trigger a run, backfill a schedule, pause and resume
it, cancel a run, and the registry of workers. A part of `Store`, kept in a module of its
own; the CLI (and later the TUI) drive it.

Each operation is one write transaction through the checkpoint writer, so it is atomic
against the workers sharing the database: a cancel either catches a run before a worker
claims it or leaves the request for the process that runs it; a pause and the ticks a
worker records are ordered by the database, never interleaved.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import Enum

from durable.store import rows
from durable.store.records import NewScheduledRun, Transition, WorkerRecord
from durable.store.scheduling import OPERATIONS_SCHEMA, ScheduledRuns, insert_ticks


class CancelOutcome(Enum):
    """What `durable cancel` did."""

    NOT_FOUND = "not found"
    FINISHED = "already finished"
    """The run had ended; nothing was changed."""
    CANCELLED = "cancelled"
    """Nothing was running it: it is Cancelled now, and no worker will start it."""
    REQUESTED = "requested"
    """A live process runs it: it stops at its next task boundary."""


@dataclass(frozen=True, slots=True)
class CancelResult:
    """The outcome of a cancel, with the state or status the run was found in."""

    outcome: CancelOutcome
    found: str | None


@dataclass(frozen=True, slots=True)
class BackfillResult:
    """How a backfill's ticks fared: created, run again (were Skipped), left alone."""

    created: int
    rescheduled: int
    existing: int


IsLive = Callable[[int | None, str | None], bool]
"""Whether the process (pid, start token) is provably running on this machine."""


class Operations(ScheduledRuns):
    """Store operations behind `durable trigger`, `backfill`, `schedule`, `cancel` and
    `workers`."""

    async def add_manual_run(self, run: NewScheduledRun) -> None:
        """Record a run to start now (`durable trigger`): a worker claims it like a tick.

        Its kind is `manual`: it does not move the flow's tick cursor.
        """
        await self._write(lambda conn: insert_ticks(conn, [run], "manual"))

    async def backfill(self, ticks: Sequence[NewScheduledRun]) -> BackfillResult:
        """Schedule past ticks to run: new ones are created, Skipped ones run after all.

        A tick is the same tick whatever flow version recorded it (name, time and
        parameters): one that was run or is waiting already is left alone.
        """

        def write(conn: sqlite3.Connection) -> BackfillResult:
            created = rescheduled = existing = 0
            fresh = []
            for tick in ticks:
                row = conn.execute(
                    "SELECT id, status FROM scheduled_runs WHERE flow_name = ?"
                    " AND scheduled_for = ? AND parameters_hash = ?",
                    (tick.flow_name, tick.scheduled_for, tick.parameters_hash),
                ).fetchone()
                if row is None:
                    fresh.append(tick)
                elif row[1] == "Skipped":
                    conn.execute(
                        "UPDATE scheduled_runs SET status = 'Scheduled',"
                        " message = 'backfilled' WHERE id = ?",
                        (row[0],),
                    )
                    rescheduled += 1
                else:
                    existing += 1
            created = insert_ticks(conn, fresh, "backfill")
            return BackfillResult(created, rescheduled, existing)

        result: BackfillResult = await self._write(write)
        return result

    async def set_paused(self, flow_name: str, *, paused: bool, now: float) -> int:
        """Pause or resume a flow's schedule; return how many waiting ticks a pause
        skipped.

        While paused, a worker records the flow's ticks as Skipped ("schedule paused");
        ticks already waiting to run are skipped too. Manual and backfilled runs are not
        affected. Resuming records nothing: `resume_schedule` in the CLI first records
        the ticks missed while paused.
        """

        def write(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO flow_settings (name, paused_at) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET paused_at = excluded.paused_at",
                (flow_name, now if paused else None),
            )
            if not paused:
                return 0
            return conn.execute(
                "UPDATE scheduled_runs SET status = 'Skipped', message = ?, ended_at = ?"
                " WHERE flow_name = ? AND kind = 'schedule' AND claimed_by IS NULL"
                " AND status IN ('Scheduled', 'Late')",
                ("schedule paused", now, flow_name),
            ).rowcount

        skipped: int = await self._write(write)
        return skipped

    async def request_cancel(
        self, run_id: str, *, now: float, unfinished: Collection[str], is_live: IsLive
    ) -> CancelResult:
        """Cancel a run: on the spot if nothing runs it, else ask its process to stop.

        Args:
            run_id: a flow run id, or a scheduled run's id (the same id).
            now: the time to stamp.
            unfinished: the flow run states that mean the run has not ended.
            is_live: tells whether a recorded owner process is still running.
        """

        def write(conn: sqlite3.Connection) -> CancelResult:
            run = conn.execute(
                "SELECT state, pid, pid_started FROM flow_runs WHERE id = ?", (run_id,)
            ).fetchone()
            tick = conn.execute(
                "SELECT status, claimed_by, pid, pid_started FROM scheduled_runs"
                " WHERE id = ?",
                (run_id,),
            ).fetchone()
            if run is None and tick is None:
                return CancelResult(CancelOutcome.NOT_FOUND, None)
            if run is not None and run[0] not in unfinished:
                return CancelResult(CancelOutcome.FINISHED, run[0])
            waiting = tick is not None and tick[0] in ("Scheduled", "Late")
            claimed = tick is not None and tick[0] == "Running"
            if run is None and not (waiting or claimed):
                return CancelResult(CancelOutcome.FINISHED, tick[0])
            # A Paused flow run waits for approval: the process that paused it has
            # ended the run (it may live on, running other things), so nothing runs it.
            running = run is not None and run[0] != "Paused"
            live = (running and is_live(run[1], run[2])) or (
                claimed and is_live(tick[2], tick[3])
            )
            found = run[0] if run is not None else tick[0]
            if live:
                # On the tick too: a claimed run's process may not have created its
                # flow run yet; its engine reads both.
                for table in ("flow_runs", "scheduled_runs"):
                    conn.execute(
                        f"UPDATE {table} SET cancel_requested_at = ? WHERE id = ?",
                        (now, run_id),
                    )
                return CancelResult(CancelOutcome.REQUESTED, found)
            if waiting or (claimed and run is None):
                conn.execute(
                    "UPDATE scheduled_runs SET status = 'Cancelled', message = ?,"
                    " ended_at = ?, claimed_by = NULL, lease_expires_at = NULL"
                    " WHERE id = ?",
                    ("cancelled before it started", now, run_id),
                )
            if run is not None:
                _cancel_flow_run(conn, run_id, now, unfinished)
            return CancelResult(CancelOutcome.CANCELLED, found)

        result: CancelResult = await self._write(write)
        return result

    async def register_worker(
        self, name: str, *, pid: int, pid_started: str, concurrency: int, now: float
    ) -> None:
        """Record a worker starting (a restarted worker of the same name replaces it)."""
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO workers (name, pid, pid_started, concurrency, started_at,"
                " heartbeat_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE"
                " SET pid = excluded.pid, pid_started = excluded.pid_started,"
                " concurrency = excluded.concurrency, started_at = excluded.started_at,"
                " heartbeat_at = excluded.heartbeat_at, stopped_at = NULL",
                (name, pid, pid_started, concurrency, now, now),
            )
        )

    async def worker_heartbeat(self, name: str, now: float, *, stopped: bool) -> None:
        """Record that a worker is alive (or has stopped)."""
        await self._write(
            lambda conn: conn.execute(
                "UPDATE workers SET heartbeat_at = ?,"
                " stopped_at = CASE WHEN ? THEN ? ELSE NULL END WHERE name = ?",
                (now, stopped, now, name),
            )
        )

    async def list_workers(self) -> list[WorkerRecord]:
        """Return every worker that has run on this database, the latest first."""
        if await self._schema_version() < OPERATIONS_SCHEMA:
            return []
        fetched = await self._fetch(
            "SELECT w.name, w.pid, w.pid_started, w.concurrency, w.started_at,"
            " w.heartbeat_at, w.stopped_at, (SELECT COUNT(*) FROM scheduled_runs s"
            " WHERE s.claimed_by = w.name AND s.status = 'Running')"
            " FROM workers w ORDER BY w.heartbeat_at DESC, w.name",
            (),
        )
        return [WorkerRecord(*row) for row in fetched]

    async def mark_late(self, *, overdue_before: float, grace: float) -> int:
        """Mark the waiting runs due before `overdue_before` Late (they still run).

        Backfilled runs are past by design, never Late: the ones a backfill created
        (kind backfill) and the Skipped ticks it rescheduled (message 'backfilled');
        so are re-runs queued for a worker (requested_at).
        """
        marked: int = await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE scheduled_runs SET status = 'Late', message = ?"
                    " WHERE status = 'Scheduled' AND kind != 'backfill'"
                    " AND message IS NOT 'backfilled' AND requested_at IS NULL"
                    " AND scheduled_for < ?",
                    (f"not started within {grace:g} s of its time", overdue_before),
                ).rowcount
            )
        )
        return marked


def _cancel_flow_run(
    conn: sqlite3.Connection, run_id: str, now: float, unfinished: Collection[str]
) -> None:
    """Move a flow run nobody runs, and its unfinished task runs, to Cancelled."""
    message = "Cancelled (durable cancel); nothing was running it"
    cancelled = Transition("Cancelled", message, now, None, True)
    marks = ", ".join("?" * len(unfinished))
    for (task_run_id,) in conn.execute(
        f"SELECT id FROM task_runs WHERE flow_run_id = ? AND state IN ({marks})",
        (run_id, *unfinished),
    ).fetchall():
        conn.execute(
            "UPDATE task_runs SET state = 'Cancelled', state_message = ?,"
            " updated_at = ?, ended_at = ? WHERE id = ?",
            (message, now, now, task_run_id),
        )
        rows.append_state(conn, run_id, task_run_id, cancelled)
    conn.execute(
        "UPDATE flow_runs SET state = 'Cancelled', state_message = ?, updated_at = ?,"
        " ended_at = ?, cancel_requested_at = NULL WHERE id = ?",
        (message, now, now, run_id),
    )
    rows.append_state(conn, run_id, None, cancelled)
    rows.clear_cancel_request(conn, run_id)
