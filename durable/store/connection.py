"""Opening the database: location, file checks, PRAGMAs, migrations, and the one helper
through which every write transaction goes (`BEGIN IMMEDIATE ... COMMIT`)."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal, TypeVar

from durable import crashpoints
from durable.errors import SchemaTooNewError, StoreError
from durable.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

T = TypeVar("T")
Durability = Literal["full", "normal"]
"""`full` survives power loss; `normal` may forget the last commits on power loss."""

BUSY_TIMEOUT_MS = 30_000
BUSY_RETRIES = 5


def default_db_path() -> Path:
    """Return the database path: `$DURABLE_DB`, else `$DURABLE_HOME/durable.db`."""
    if explicit := os.environ.get("DURABLE_DB"):
        return Path(explicit).expanduser()
    home = os.environ.get("DURABLE_HOME") or "~/.durable"
    return Path(home).expanduser() / "durable.db"


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """Return the path to use for a `db=` / `--db` argument (None means the default)."""
    return default_db_path() if db is None else Path(db).expanduser()


def ensure_file(path: Path) -> None:
    """Create the database file (mode 0600, directory 0700) if it does not exist yet."""
    if path.exists():
        return
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        # SQLite gives the -wal and -shm files the mode of the database file.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:  # another process created it first
        pass
    except OSError as exc:
        raise StoreError(
            f"Cannot create database {str(path)!r}: {exc.strerror}"
        ) from exc


def check_existing(path: Path) -> None:
    """Refuse a file that is not a durable database or comes from a newer durable.

    Reads through a read-only connection, so a refused file is never modified.
    """
    if not path.exists() or path.stat().st_size == 0:
        return
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"Cannot read database {str(path)!r}: {exc}; "
            "it may be damaged or not a durable database (restore it from a backup)"
        ) from exc
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{str(path)!r} is an SQLite file of another application; "
            "point --db or DURABLE_DB at a durable database"
        )
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(path=str(path), found=version, supported=SCHEMA_VERSION)


def connect_writer(path: Path, durability: Durability = "full") -> sqlite3.Connection:
    """Open the process's writer connection: WAL, the chosen fsync level, busy timeout.

    The connection is made for one thread (the checkpoint writer's) but may be handed over.
    """
    if durability not in ("full", "normal"):
        raise StoreError(f"durability must be 'full' or 'normal', not {durability!r}")
    try:
        conn = sqlite3.connect(
            path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )  # fmt: skip
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(
                f"Cannot use write-ahead logging on {str(path)!r} (got {mode!r}); "
                "is it on a network file system or in a read-only directory?"
            )
        conn.execute(f"PRAGMA synchronous={durability.upper()}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA journal_size_limit=67108864")
        conn.execute("PRAGMA temp_store=MEMORY")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"Cannot open database {str(path)!r}: {exc}") from exc
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """Open a read-only connection (CLI, TUI, lazy result loads)."""
    try:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
        )  # fmt: skip
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"Cannot open database {str(path)!r}: {exc}") from exc
    return conn


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorname", "").startswith("SQLITE_BUSY") or (
        "locked" in str(exc)
    )


def transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run `work` inside `BEGIN IMMEDIATE ... COMMIT`: the one way durable writes.

    Rolls back on any error. If the database stays locked past the busy timeout, retries
    up to five times with jitter, then raises StoreError. Never run user code in `work`.
    """
    for attempt in range(BUSY_RETRIES + 1):
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if _is_busy(exc) and attempt < BUSY_RETRIES:
                threading.Event().wait(random.uniform(0.01, 0.1) * (attempt + 1))
                continue
            raise StoreError(f"Cannot start a write transaction: {exc}") from exc
        try:
            value = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return value
    raise AssertionError("unreachable")  # pragma: no cover


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema up to date, all in one transaction (a crash leaves the old one)."""

    def apply(conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SchemaTooNewError(
                path=str(path), found=version, supported=SCHEMA_VERSION
            )
        for number in range(version, SCHEMA_VERSION):
            logger.debug("migrating %s to schema version %d", path, number + 1)
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            crashpoints.crash_point("mid_migration")
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    current = conn.execute("PRAGMA user_version").fetchone()[0]
    if current != SCHEMA_VERSION:
        try:
            transaction(conn, apply)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"Cannot set up database {str(path)!r}: {exc}") from exc
