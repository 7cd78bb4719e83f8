"""`durable doctor`: what is wrong with a database, and what to do about it.

Every check reads through its own read-only connection (never the store, which refuses a
damaged file), so the doctor works on the files the runtime will not open: it reports
and advises, and changes nothing unless asked to remove orphaned result files.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from durable.liveness import Liveness, liveness
from durable.store.connection import GuardedConnection, ReadBudget
from durable.store.results import find_orphans
from durable.store.schema import APPLICATION_ID, SCHEMA_VERSION

WAL_WARN_BYTES = 64 * 1024 * 1024
"""A WAL larger than this means checkpoints are not keeping up (journal_size_limit)."""
MAX_FINDINGS = 10
"""Integrity problems listed (the rest are counted)."""
CORE_TABLES = ("flows", "flow_runs", "task_runs", "states", "results", "logs")
"""Tables of every durable database since the first schema version."""


class Level(Enum):
    """How bad a finding is."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: what was found and what to do."""

    check: str
    level: Level
    message: str
    advice: str = ""


@dataclass
class Report:
    """Every finding about one database."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    unusable: bool = False
    """The file cannot be used as a durable database at all."""

    @property
    def healthy(self) -> bool:
        """Whether no check found a problem (warnings allowed)."""
        return not self.unusable and all(
            f.level is not Level.PROBLEM for f in self.findings
        )


def is_wal_reset_fixed(version: tuple[int, int, int]) -> bool:
    """Whether SQLite `version` has the fix for the WAL-reset bug, which can corrupt a
    database written by several connections at once (fixed in 3.44.6, 3.50.7, 3.51.3)."""
    if version >= (3, 51, 3):
        return True
    if version[:2] == (3, 50):
        return version >= (3, 50, 7)
    if version[:2] == (3, 44):
        return version >= (3, 44, 6)
    return False


def examine(
    db: Path,
    *,
    remove_orphans: bool = False,
    is_alive: Callable[[int | None, str | None], bool] | None = None,
) -> Report:
    """Run every check on the database at `db`."""
    report = Report(db)
    add = report.findings.append
    add(_sqlite_version())
    if not db.is_file():
        report.unusable = True
        add(Finding("file", Level.PROBLEM, f"No database at {str(db)!r}",
                    "pass --db PATH or set DURABLE_DB"))  # fmt: skip
        return report
    budget = ReadBudget()
    try:
        # Guarded: the file may be hostile (a 1 GB row, a view that recurses forever).
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True,
                               isolation_level=None, timeout=5,
                               factory=GuardedConnection)  # fmt: skip
        conn.execute("PRAGMA trusted_schema=OFF")
        budget.install(conn)
    except sqlite3.Error as exc:
        report.unusable = True
        add(Finding("file", Level.PROBLEM, f"Cannot open {str(db)!r}: {exc}",
                    "check its permissions, or restore it from a backup"))  # fmt: skip
        return report
    try:
        budget.start()
        header = _identity(conn, db)
        add(header)
        if header.level is Level.PROBLEM:
            report.unusable = True
            return report
        budget.deadline = math.inf  # bounded by the file's size, however large
        integrity = _integrity(conn)
        add(integrity)
        if integrity.level is Level.PROBLEM:
            report.unusable = True
            return report
        add(_wal(db))
        budget.start()
        add(_stuck_runs(conn, is_alive or _maybe_alive))
    finally:
        conn.close()
    add(_orphans(db, remove=remove_orphans))
    return report


def _maybe_alive(pid: int | None, token: str | None) -> bool:
    return liveness(pid, token) is not Liveness.DEAD


def _sqlite_version() -> Finding:
    version = sqlite3.sqlite_version_info
    text = sqlite3.sqlite_version
    if is_wal_reset_fixed(version):
        return Finding("sqlite", Level.OK, f"SQLite {text}")
    return Finding(
        "sqlite", Level.WARNING,
        f"SQLite {text} has the WAL-reset bug (fixed in 3.44.6, 3.50.7 and 3.51.3): a "
        "database written by several processes at once can be corrupted",
        "use a Python built with a newer SQLite (or pysqlite3-binary); until then, run "
        "one worker per database",
    )  # fmt: skip


def _identity(conn: sqlite3.Connection, db: Path) -> Finding:
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        return Finding("file", Level.PROBLEM,
                       f"{str(db)!r} is not a readable SQLite database ({exc})",
                       "restore it from a backup; durable never overwrites it")  # fmt: skip
    if app_id != APPLICATION_ID:
        return Finding("file", Level.PROBLEM,
                       f"{str(db)!r} is an SQLite file, but not a durable database",
                       "point --db or DURABLE_DB at the file durable writes; if this "
                       "was it, restore it from a backup")  # fmt: skip
    if version > SCHEMA_VERSION:
        return Finding("schema", Level.PROBLEM,
                       f"Schema version {version}, newer than this durable's "
                       f"({SCHEMA_VERSION})", "upgrade durable")  # fmt: skip
    if version < 0:
        return Finding("schema", Level.PROBLEM,
                       f"Schema version {version}, which no durable writes: the file "
                       "was changed by another program", "restore it from a backup")  # fmt: skip
    altered = _not_tables(conn)
    if altered:
        return Finding("schema", Level.PROBLEM,
                       f"{', '.join(altered)} should be tables but are not (views, or "
                       "missing): the file was changed by another program",
                       "restore it from a backup")  # fmt: skip
    if version < SCHEMA_VERSION:
        return Finding("schema", Level.OK,
                       f"Schema version {version}; the next write migrates it to "
                       f"{SCHEMA_VERSION}")  # fmt: skip
    return Finding("schema", Level.OK, f"Schema version {version} (current)")


def _not_tables(conn: sqlite3.Connection) -> list[str]:
    """The tables every durable database has that are not tables in this one."""
    try:
        found = dict(conn.execute(
            "SELECT name, type FROM sqlite_master WHERE name IN"
            f" ({', '.join('?' * len(CORE_TABLES))})", CORE_TABLES,
        ).fetchall())  # fmt: skip
    except sqlite3.DatabaseError:  # damaged: the integrity check tells how
        return []
    return [name for name in CORE_TABLES if found.get(name) != "table"]


def _integrity(conn: sqlite3.Connection) -> Finding:
    try:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        rows = [str(exc)]
    if rows == ["ok"]:
        return Finding("integrity", Level.OK, "integrity_check: ok")
    listed = "; ".join(rows[:MAX_FINDINGS])
    more = f" (and {len(rows) - MAX_FINDINGS} more)" if len(rows) > MAX_FINDINGS else ""
    return Finding("integrity", Level.PROBLEM, f"integrity_check: {listed}{more}",
                   "restore the database from a backup; copy it aside before any "
                   "repair (sqlite3 .recover)")  # fmt: skip


def _wal(db: Path) -> Finding:
    wal = db.with_name(db.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    text = f"WAL {size / 1024 / 1024:.1f} MiB"
    if size > WAL_WARN_BYTES:
        return Finding("wal", Level.WARNING, f"{text}: checkpoints are not keeping up",
                       "stop long readers (an open TUI over a slow link, a BEGIN left "
                       "open) so the WAL can be checkpointed")  # fmt: skip
    return Finding("wal", Level.OK, text)


def _stuck_runs(
    conn: sqlite3.Connection, is_alive: Callable[[int | None, str | None], bool]
) -> Finding:
    try:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(flow_runs)")}
        if "pid" not in columns:
            return Finding("runs", Level.OK, "no run records its process (old schema)")
        running = conn.execute(
            "SELECT id, pid, pid_started FROM flow_runs WHERE state IN"
            " ('Running', 'Cancelling') ORDER BY created_at"
        ).fetchall()
    except sqlite3.DatabaseError as exc:  # interrupted (too slow), or a row too big
        return Finding("runs", Level.PROBLEM, f"Cannot list the running runs: {exc}",
                       "check the database with sqlite3; restore it from a backup")  # fmt: skip
    stuck = [
        run_id
        for run_id, pid, token in running
        if pid is not None and not is_alive(pid, token)
    ]
    if not stuck:
        return Finding("runs", Level.OK, "no run is stuck (every running run's process "
                       "is alive)")  # fmt: skip
    shown = ", ".join(stuck[:MAX_FINDINGS]) + (
        " ..." if len(stuck) > MAX_FINDINGS else ""
    )
    return Finding("runs", Level.WARNING,
                   f"{len(stuck)} run(s) Running whose process is gone: {shown}",
                   "a worker resumes the ones it scheduled; resume others with: durable "
                   f"resume {stuck[0]}")  # fmt: skip


def _orphans(db: Path, *, remove: bool) -> Finding:
    orphans = find_orphans(db)
    if not orphans:
        return Finding("results", Level.OK, "no orphaned result file")
    size = sum(p.stat().st_size for p in orphans if p.exists())
    text = f"{len(orphans)} orphaned result file(s), {size / 1024 / 1024:.1f} MiB"
    if remove:
        for path in orphans:
            path.unlink(missing_ok=True)
        return Finding("results", Level.OK, f"{text}: removed")
    return Finding("results", Level.WARNING,
                   f"{text} (results whose commit never happened)",
                   "remove them with: durable doctor --remove-orphans")  # fmt: skip


def exit_code(report: Report) -> int:
    """0 healthy (warnings allowed), 1 a problem found, 3 the database is unusable."""
    if report.unusable:
        return 3
    return 0 if report.healthy else 1
