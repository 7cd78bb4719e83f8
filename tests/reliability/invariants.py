"""The invariant checker (RELIABILITY.md 5.0), adapted to durable's schema
(durable/store/schema.py): `check_invariants(db)` lists what is wrong with a database,
read through a read-only connection, and returns [] for a sound one.

Mapping of RELIABILITY.md's list onto durable:

- `PRAGMA integrity_check == 'ok'`; also `foreign_key_check` empty.
- "No result without a terminal SUCCESS, and vice versa": durable stores a result with
  the state that carries it (a checkpointed Success's value, a Looped's, a Failed's
  exception) in the same transaction, and sets `task_runs.has_result`. So: `has_result`
  implies a `results` row; an unfinished state (Pending, Scheduled, Running...) never has
  `has_result`; a `Success` with `has_result` has its row. (A results row may outlive
  `has_result`: a Failed's exception stays while the task is Retrying, and is replaced
  when it finishes; so "row implies has_result" is not an invariant of durable.)
- At most one result per task run (results' key) and one task run per (flow run,
  task slug, map index).
- No duplicate scheduled runs: none per (flow, version, scheduled_for, parameters) and,
  for schedule ticks, none per (flow name, scheduled_for, parameters) across versions.
- "No RUNNING task whose lease owner is dead, after a reaper pass" becomes: no task run
  Running in a flow run that has finished (nothing will ever finish it), and a finished
  scheduled run has a finished flow run (see `check_invariants(settled=True)` for the
  stricter state a quiescent database reaches: no flow run Running whose process is dead).
- The run state agrees with its task states: a Success flow run has every task run
  finished (Success, Skipped, Cached, Mapped, Failed under a trigger that allows it...);
  its history agrees too: each run's and task run's current state is its latest
  `states` row ("state is a prefix of history").
- "Schedule cursors <= the max inserted tick": durable's cursor *is* MAX(scheduled_for)
  of a flow's schedule ticks, so it holds by construction; checked instead: a claimed
  (Running) scheduled run has a lease token, owner and expiry; an unclaimed one has none.
- `user_version` equals SCHEMA_VERSION; `application_id` is durable's.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from durable.liveness import Liveness, liveness
from durable.store.schema import APPLICATION_ID, SCHEMA_VERSION

UNFINISHED_TASK = (
    "Pending",
    "Scheduled",
    "Paused",
    "Resume",
    "Retrying",
    "Running",
    "Cancelling",
)
"""Task run states that are not finished (durable.states: not Finished subclasses)."""
RUNNING = ("Running", "Cancelling")
FINISHED_RUN = ("Success", "Failed", "Cancelled", "TimedOut", "TriggerFailed")
"""Flow run states that mean the run has ended."""
LIMIT = 5
"""Offending ids shown per problem."""


def open_read_only(db: Path) -> sqlite3.Connection:
    """Open `db` read-only (its -wal is read, never checkpointed away)."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)


def check_invariants(
    db: Path, *, expected_version: int = SCHEMA_VERSION, settled: bool = False
) -> list[str]:
    """Return every broken invariant of the database at `db` ([] when it is sound).

    `settled=True` adds the checks that hold once nothing runs: no flow run Running
    whose process is dead is *not* a problem mid-crash (a resume finishes it), so it is
    only checked when the caller says every run was driven to its end.
    """
    if not db.exists() or db.stat().st_size == 0:
        return []  # killed before the first commit: an empty prefix
    try:
        with closing(open_read_only(db)) as conn:
            return check_connection(
                conn, expected_version=expected_version, settled=settled
            )
    except (
        sqlite3.DatabaseError
    ) as exc:  # malformed beyond what integrity_check reports
        return [f"unreadable: {type(exc).__name__}: {exc}"]


def check_connection(
    conn: sqlite3.Connection, *, expected_version: int = SCHEMA_VERSION,
    settled: bool = False,
) -> list[str]:  # fmt: skip
    """`check_invariants` on an open connection (a caller that reads more from the same
    database saves opening it again: each open of a copied crash image replays its log)."""
    try:
        return _check(conn, expected_version, settled)
    except sqlite3.DatabaseError as exc:
        return [f"unreadable: {type(exc).__name__}: {exc}"]


def _check(conn: sqlite3.Connection, expected_version: int, settled: bool) -> list[str]:
    problems: list[str] = []
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    if [r[0] for r in rows] != ["ok"]:
        return [f"integrity_check: {[r[0] for r in rows][:LIMIT]}"]
    fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    if fk:
        problems.append(f"foreign_key_check: {fk[:LIMIT]}")
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    if version == 0 and not tables:
        return problems  # nothing committed yet (the schema commits at once)
    if version != expected_version:
        problems.append(f"user_version {version}, expected {expected_version}")
    if app_id not in (0, APPLICATION_ID):
        problems.append(f"application_id {app_id:#x} is not durable's")
    if version < 1:
        return problems
    problems += _results(conn)
    problems += _task_runs(conn)
    problems += _histories(conn)
    if "scheduled_runs" in tables:
        problems += _scheduled_runs(conn, version)
    if settled:
        problems += _settled(conn, version)
    return problems


def _ids(conn: sqlite3.Connection, sql: str, *args: object) -> list[object]:
    return [row[0] if len(row) == 1 else row for row in conn.execute(sql, args)]


def _report(problems: list[str], what: str, found: list[object]) -> None:
    if found:
        problems.append(f"{what}: {len(found)}, e.g. {found[:LIMIT]}")


def _results(conn: sqlite3.Connection) -> list[str]:
    p: list[str] = []
    marks = ", ".join("?" * len(UNFINISHED_TASK))
    _report(p, "has_result without a results row", _ids(conn,
        "SELECT t.id FROM task_runs t LEFT JOIN results r ON r.task_run_id = t.id"
        " WHERE t.has_result AND r.task_run_id IS NULL"))  # fmt: skip
    _report(p, "unfinished task run with has_result", _ids(conn,
        f"SELECT id, state FROM task_runs WHERE has_result AND state IN ({marks})",
        *UNFINISHED_TASK))  # fmt: skip
    _report(p, "duplicate results", _ids(conn,
        "SELECT task_run_id, COUNT(*) FROM results GROUP BY task_run_id"
        " HAVING COUNT(*) > 1"))  # fmt: skip
    _report(p, "result of no task run", _ids(conn,
        "SELECT r.task_run_id FROM results r LEFT JOIN task_runs t"
        " ON t.id = r.task_run_id WHERE t.id IS NULL"))  # fmt: skip
    return p


def _task_runs(conn: sqlite3.Connection) -> list[str]:
    p: list[str] = []
    marks = ", ".join("?" * len(UNFINISHED_TASK))
    _report(p, "duplicate task runs per (flow run, slug, map index)", _ids(conn,
        "SELECT flow_run_id, task_slug, map_index FROM task_runs"
        " GROUP BY flow_run_id, task_slug, map_index HAVING COUNT(*) > 1"))  # fmt: skip
    _report(p, "Success flow run with an unfinished task run", _ids(conn,
        "SELECT r.id, t.task_slug, t.state FROM flow_runs r JOIN task_runs t"
        f" ON t.flow_run_id = r.id WHERE r.state = 'Success' AND t.state IN ({marks})",
        *UNFINISHED_TASK))  # fmt: skip
    finished = ", ".join("?" * len(FINISHED_RUN))
    _report(p, "task run Running in a finished flow run", _ids(conn,
        "SELECT r.id, r.state, t.task_slug FROM flow_runs r JOIN task_runs t"
        f" ON t.flow_run_id = r.id WHERE r.state IN ({finished})"
        " AND t.state IN ('Running', 'Cancelling')", *FINISHED_RUN))  # fmt: skip
    _report(p, "task run with a negative attempt count", _ids(conn,
        "SELECT id FROM task_runs WHERE attempts < 0"))  # fmt: skip
    return p


def _histories(conn: sqlite3.Connection) -> list[str]:
    p: list[str] = []
    # The latest history row of each task run (and each flow run: task_run_id NULL)
    # names its current state: the two are written in one transaction.
    _report(p, "task run state differs from its latest history row", _ids(conn,
        "SELECT t.id, t.state, s.name FROM task_runs t JOIN states s ON s.id ="
        " (SELECT MAX(id) FROM states WHERE task_run_id = t.id)"
        " WHERE s.name != t.state"))  # fmt: skip
    _report(p, "task run past Pending without history", _ids(conn,
        "SELECT t.id, t.state FROM task_runs t WHERE t.state != 'Pending'"
        " AND NOT EXISTS (SELECT 1 FROM states WHERE task_run_id = t.id)"))  # fmt: skip
    _report(p, "flow run state differs from its latest history row", _ids(conn,
        "SELECT r.id, r.state, s.name FROM flow_runs r JOIN states s ON s.id ="
        " (SELECT MAX(id) FROM states WHERE flow_run_id = r.id AND task_run_id IS NULL)"
        " WHERE s.name != r.state"))  # fmt: skip
    return p


def _scheduled_runs(conn: sqlite3.Connection, version: int) -> list[str]:
    p: list[str] = []
    _report(p, "duplicate scheduled runs", _ids(conn,
        "SELECT flow_name, flow_version, scheduled_for, parameters_hash"
        " FROM scheduled_runs GROUP BY 1, 2, 3, 4 HAVING COUNT(*) > 1"))  # fmt: skip
    if version >= 6:
        _report(p, "duplicate schedule ticks across versions", _ids(conn,
            "SELECT flow_name, scheduled_for, parameters_hash FROM scheduled_runs"
            " WHERE kind = 'schedule' GROUP BY 1, 2, 3 HAVING COUNT(*) > 1"))  # fmt: skip
    _report(p, "claimed scheduled run without lease", _ids(conn,
        "SELECT id FROM scheduled_runs WHERE status = 'Running' AND (lease_token IS NULL"
        " OR claimed_by IS NULL OR lease_expires_at IS NULL)"))  # fmt: skip
    _report(p, "unclaimed scheduled run holding a claim", _ids(conn,
        "SELECT id, status FROM scheduled_runs WHERE status IN ('Scheduled', 'Late')"
        " AND (claimed_by IS NOT NULL OR lease_token IS NOT NULL)"))  # fmt: skip
    finished = ", ".join("?" * len(FINISHED_RUN))
    _report(p, "Finished scheduled run whose flow run has not finished", _ids(conn,
        "SELECT s.id, r.state FROM scheduled_runs s JOIN flow_runs r ON r.id = s.id"
        f" WHERE s.status = 'Finished' AND r.state NOT IN ({finished})",
        *FINISHED_RUN))  # fmt: skip
    _report(p, "Crashed scheduled run with no crash counted", _ids(conn,
        "SELECT id FROM scheduled_runs WHERE status = 'Crashed' AND crashes < 1"))  # fmt: skip
    return p


def _settled(conn: sqlite3.Connection, version: int) -> list[str]:
    p: list[str] = []
    _report(p, "task run still Running", _ids(conn,
        "SELECT id, flow_run_id FROM task_runs WHERE state IN ('Running',"
        " 'Cancelling')"))  # fmt: skip
    if version >= 6:
        dead = [
            run_id
            for run_id, pid, token in conn.execute(
                "SELECT id, pid, pid_started FROM flow_runs WHERE state = 'Running'"
            )
            if liveness(pid, token) is not Liveness.ALIVE
        ]
        _report(p, "flow run Running without a live process", dead)
    if version >= 5:
        _report(p, "scheduled run still claimed", _ids(conn,
            "SELECT id FROM scheduled_runs WHERE status = 'Running'"))  # fmt: skip
    return p
