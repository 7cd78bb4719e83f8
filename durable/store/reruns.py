"""Re-runs a worker carries out, and the audit log of actions. A part of `Store`.

A re-run queues an existing flow run for a worker again (the terminal UI's "retry from
failure" and "approve", like Prefect 1's UI setting a run back to Scheduled for its
agent): its scheduled run goes back to Scheduled with `rerun` saying what to do, or,
for a run `durable run` started, one is recorded. The run process consumes the request
in the same ordered checkpoint stream as the resets it makes, so a crash either keeps
both or neither: a restart is never applied twice, nor lost.
"""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from durable.errors import DurableError, RunNotFoundError
from durable.store.control import IsLive, Operations
from durable.store.scheduling import RERUNS_SCHEMA

RESTART = "restart"
RESUME = "resume"


def restart_request(from_tasks: Sequence[str] | None) -> str:
    """The `rerun` text of a restart (from the failed tasks, or from `from_tasks`)."""
    return (
        RESTART if from_tasks is None else f"{RESTART}:{json.dumps(list(from_tasks))}"
    )


def parse_rerun(text: str | None) -> tuple[str | None, list[str] | None]:
    """Split a `rerun` text into its verb (resume, restart or None) and its task slugs."""
    if text is None:
        return None, None
    verb, _, slugs = text.partition(":")
    return verb, (json.loads(slugs) if slugs else None)


@dataclass(frozen=True, slots=True)
class ActionRecord:
    """One line of the audit log."""

    id: int
    at: float
    actor: str
    verb: str
    target: str
    outcome: str
    ok: bool


class Reruns(Operations):
    """Store operations behind `durable.control.restart` and `approve`, and the audit log."""

    async def queue_rerun(
        self, run_id: str, rerun: str, *, now: float, message: str, is_live: IsLive
    ) -> None:
        """Queue flow run `run_id` for a worker to run again, as `rerun` says.

        Raises:
            RunNotFoundError: no such flow run.
            DurableError: a live process or a worker is running it now.
        """

        # Refusals are returned, not raised: an exception would stop the writer.
        def write(conn: sqlite3.Connection) -> DurableError | None:
            run = conn.execute(
                "SELECT r.flow_name, f.version, r.pid, r.pid_started, r.state"
                " FROM flow_runs r JOIN flows f ON f.id = r.flow_id WHERE r.id = ?",
                (run_id,),
            ).fetchone()
            if run is None:
                return RunNotFoundError(run_id)
            name, version, pid, pid_started, state = run
            tick = conn.execute(
                "SELECT status, claimed_by FROM scheduled_runs WHERE id = ?", (run_id,)
            ).fetchone()
            if tick is not None and tick[0] == "Running":
                return DurableError(
                    f"Run {run_id!r} is being run by worker {tick[1]!r}; wait for it to "
                    f"end, or cancel it first: durable cancel {run_id}"
                )
            if state == "Running" and is_live(pid, pid_started):
                return DurableError(
                    f"Run {run_id!r} is running in process {pid}; wait for it to end, "
                    f"or cancel it first: durable cancel {run_id}"
                )
            if tick is None:
                conn.execute(
                    "INSERT INTO scheduled_runs (id, flow_name, flow_version,"
                    " scheduled_for, parameters_hash, parameters, status, message,"
                    " created_at, kind, rerun, requested_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'Scheduled', ?, ?, 'manual', ?, ?)",
                    (run_id, name, version, now, f"rerun:{run_id}", pickle.dumps({}),
                     message, now, rerun, now),
                )  # fmt: skip
                return None
            conn.execute(
                "UPDATE scheduled_runs SET status = 'Scheduled', rerun = ?,"
                " requested_at = ?, message = ?, claimed_by = NULL, lease_token = NULL,"
                " lease_expires_at = NULL, pid = NULL, pid_started = NULL, crashes = 0,"
                " ended_at = NULL, cancel_requested_at = NULL WHERE id = ?",
                (rerun, now, message, run_id),
            )
            conn.execute(
                "UPDATE flow_runs SET cancel_requested_at = NULL WHERE id = ?",
                (run_id,),
            )
            return None

        refused = await self._write(write)
        if refused is not None:
            raise refused

    def consume_rerun(self, run_id: str) -> None:
        """Queue the clearing of run `run_id`'s re-run request (after what it asked
        for, in the same ordered checkpoint stream)."""
        self.writer.submit(
            lambda conn: conn.execute(
                "UPDATE scheduled_runs SET rerun = NULL WHERE id = ?"
                " AND rerun IS NOT NULL",
                (run_id,),
            )
        )

    async def run_graph(self, run_id: str) -> str | None:
        """The graph (JSON, `durable.core.identity.shape`) of a run's flow version."""
        fetched = await self._fetch(
            "SELECT f.graph FROM flow_runs r JOIN flows f ON f.id = r.flow_id"
            " WHERE r.id = ?",
            (run_id,),
        )
        return fetched[0][0] if fetched else None

    async def record_action(
        self, *, at: float, actor: str, verb: str, target: str, outcome: str, ok: bool
    ) -> None:
        """Append one line to the audit log."""
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO actions (at, actor, verb, target, outcome, ok)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (at, actor, verb, target, outcome, int(ok)),
            )
        )

    async def list_actions(self, limit: int = 50) -> list[ActionRecord]:
        """The newest lines of the audit log, newest first."""
        if await self._schema_version() < RERUNS_SCHEMA:
            return []  # a database from before the audit log, opened read-only
        fetched = await self._fetch(
            "SELECT id, at, actor, verb, target, outcome, ok FROM actions"
            " ORDER BY id DESC LIMIT ?",
            (limit,),
        )
        return [
            ActionRecord(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]))
            for r in fetched
        ]
