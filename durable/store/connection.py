"""Opening the database: location, file checks, PRAGMAs, migrations, and the one helper
through which every write transaction goes (`BEGIN IMMEDIATE ... COMMIT`)."""

from __future__ import annotations

import logging
import math
import os
import random
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, TypeVar

from durable import crashpoints
from durable.errors import (
    DatabaseAccessError,
    InsecurePermissionsError,
    SchemaTooNewError,
    StoreError,
)
from durable.store.schema import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION

logger = logging.getLogger(__name__)

T = TypeVar("T")
Durability = Literal["full", "normal"]
"""`full` survives power loss; `normal` may forget the last commits on power loss."""

ALLOW_INSECURE_PERMS = "DURABLE_ALLOW_INSECURE_PERMS"
"""Set to 1 to write a database other users can write (CLI: --allow-insecure-perms)."""
_ALLOW_HINT = f"--allow-insecure-perms or {ALLOW_INSECURE_PERMS}=1"
BUSY_TIMEOUT_MS = 30_000
MAX_READ_LENGTH = 64 * 1024 * 1024
"""The longest row a guarded reader (CLI, doctor) loads; longer ones are refused."""
READ_BUDGET_SECONDS = 2.0
"""How long one statement of a guarded reader may run (a listing takes milliseconds)."""
BUSY_RETRIES = 5
_JITTER = random.Random()
"""durable's own random numbers: drawing from the `random` module's shared generator
would change what a user's seeded `random` calls return."""
ROW_MARGIN = 64 * 1024
"""Bytes of a row kept for its other columns when a value must fit SQLite's length limit."""

TEST_MAX_PAGE_COUNT = "DURABLE_TEST_MAX_PAGE_COUNT"
"""Test only: `PRAGMA max_page_count` on writer connections, a genuine SQLITE_FULL
without filling a disk (tests/reliability/test_resources.py)."""
TEST_LIMIT_LENGTH = "DURABLE_TEST_LIMIT_LENGTH"
"""Test only: SQLITE_LIMIT_LENGTH (bytes) on writer connections, to reach the limits of
one value without gigabytes of data."""


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
    """Create the database file (mode 0600, directory 0700) if it does not exist yet.

    The first step of opening for writing: refuses first a database, or a directory,
    that other users can write (`check_permissions`).
    """
    check_permissions(path)
    if path.exists():
        return
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # The file appears whole: an empty WAL database made under a temporary name and
    # linked into place (an atomic create-if-absent). A database path therefore never
    # holds a zero-length file of durable's making, and `check_existing` can refuse one
    # (a truncated database) instead of quietly starting afresh in it.
    temporary = path.with_name(
        f".{path.name}.{os.getpid()}-{_JITTER.getrandbits(48):012x}"
    )
    try:
        # SQLite gives the -wal and -shm files the mode of the database file.
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        conn = sqlite3.connect(temporary, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # writes the header page
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        finally:
            # The last connection: checkpointed (and synced: SQLite's default is FULL),
            # its -wal and -shm removed.
            conn.close()
        try:
            os.link(temporary, path)
        except FileExistsError:  # another process created it first
            pass
        except OSError:  # no hard links on this file system (some FUSE, network)
            _copy_exclusive(temporary, path)
        _fsync_directory(path.parent)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise StoreError(f"Cannot create database {str(path)!r}: {reason}") from exc
    finally:
        for suffix in ("", "-wal", "-shm"):
            temporary.with_name(temporary.name + suffix).unlink(missing_ok=True)


def _copy_exclusive(source: Path, target: Path) -> None:
    # Not atomic (the file is briefly empty), but never over another's database.
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    try:
        os.write(fd, source.read_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the file is damaged or not a database at all."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    return name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))


def damage_advice(path: Path) -> str:
    """What to do about a damaged database, for the end of an error message."""
    return (
        f"run `durable --db {str(path)!r} doctor` to check it, or restore it from a "
        "backup"
    )


def open_error(path: Path, exc: sqlite3.Error, doing: str = "open") -> StoreError:
    """The StoreError for an SQLite error on the database: a damaged file says so."""
    if is_damage(exc):
        return StoreError(
            f"Database {str(path)!r} is damaged ({exc}): {damage_advice(path)}"
        )
    name = getattr(exc, "sqlite_errorname", "")
    if name == "SQLITE_INTERRUPT":  # a guarded reader's ReadBudget ran out
        return StoreError(
            f"Cannot {doing} database {str(path)!r}: a query ran longer than "
            f"{READ_BUDGET_SECONDS:g} s and was stopped (a view that never ends, or a "
            "damaged file?); check it with: durable doctor"
        )
    if name == "SQLITE_TOOBIG":  # a guarded reader's MAX_READ_LENGTH
        return StoreError(
            f"Cannot {doing} database {str(path)!r}: a row is larger than "
            f"{MAX_READ_LENGTH // 1024 // 1024} MiB, more than durable writes for it to "
            "show (a damaged or hostile file?); check it with: durable doctor"
        )
    return StoreError(f"Cannot {doing} database {str(path)!r}: {exc}")


def check_permissions(path: Path) -> None:
    """Refuse to write a database that other users could change behind durable's back.

    A database (or its -wal, -shm or -journal) writable by group or others, or one in a
    directory everyone may write without the sticky bit (where anyone may replace it),
    is refused, unless `DURABLE_ALLOW_INSECURE_PERMS=1` (CLI: `--allow-insecure-perms`).
    Readers are not checked: the CLI and TUI never trust what they read.

    Raises:
        InsecurePermissionsError: naming the path, its mode and the fix.
    """
    if os.environ.get(ALLOW_INSECURE_PERMS, "") not in ("", "0"):
        return
    directory = path.parent
    try:
        mode = os.stat(directory).st_mode
    except OSError:
        mode = 0  # missing: ensure_file creates it 0700
    if mode & stat.S_IWOTH and not mode & stat.S_ISVTX:
        raise InsecurePermissionsError(
            f"Directory {str(directory)!r} of database {str(path)!r} is writable by "
            f"every user (mode {stat.S_IMODE(mode):04o}, no sticky bit): anyone may "
            f"replace the database. Fix: chmod o-w {str(directory)!r} (or chmod +t), "
            f"or move the database; to go on anyway: {_ALLOW_HINT}"
        )
    for suffix in ("", "-wal", "-shm", "-journal"):
        file = path.with_name(path.name + suffix)
        try:
            mode = os.stat(file).st_mode
        except OSError:
            continue
        if mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise InsecurePermissionsError(
                f"Database file {str(file)!r} is writable by other users (mode "
                f"{stat.S_IMODE(mode):04o}): they could change what runs. Fix: chmod 600 "
                f"{str(file)!r}; to go on anyway: {_ALLOW_HINT}"
            )


def check_access(path: Path, *, write: bool) -> None:
    """Refuse, before SQLite touches anything, a database this user may not use.

    A WAL database needs its -wal and -shm files beside it: a writer writes both, a
    reader writes the -shm, and whoever opens it first creates them, so the directory
    must be writable while they are missing. (As root, every check passes.)

    Raises:
        DatabaseAccessError: naming the path and what is not allowed.
    """
    doing = "write" if write else "read"
    if path.exists():
        wanted = os.R_OK | os.W_OK if write else os.R_OK
        if not os.access(path, wanted):
            what = "read-only" if os.access(path, os.R_OK) else "not readable"
            raise DatabaseAccessError(
                f"Cannot {doing} database {str(path)!r}: the file is {what} for {_user()}; "
                "change its permissions (chmod u+rw) or use another --db"
            )
    elif not write:
        return  # Store.open says that there is no database
    sides = [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]
    needed = sides if write else sides[1:]
    for side in needed if write else ():  # a reader can make do with a read-only -shm
        if side.exists() and not os.access(side, os.R_OK | os.W_OK):
            raise DatabaseAccessError(
                f"Cannot {doing} database {str(path)!r}: {side.name} beside it is not "
                f"writable for {_user()} (SQLite's WAL needs it); fix its permissions, or "
                "run as the user who owns it"
            )
    directory = path.parent
    missing = [side.name for side in needed if not side.exists()]
    creates = missing or not path.exists()  # a missing directory: ensure_file makes it
    if creates and directory.is_dir() and not os.access(directory, os.W_OK | os.X_OK):
        names = " and ".join(missing) or path.name
        raise DatabaseAccessError(
            f"Cannot {doing} database {str(path)!r}: its directory {str(directory)!r} "
            f"is read-only for {_user()}, and SQLite must create {names} there (SQLite "
            "reports: read-only directory, cannot open); make the directory "
            "writable, or move the database"
        )


def _user() -> str:
    uid = os.geteuid()
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def check_existing(path: Path) -> None:
    """Refuse a file that is not a durable database or comes from a newer durable.

    Reads through a read-only connection, so a refused file is never modified.
    """
    if not path.exists():
        return
    if path.stat().st_size == 0:
        raise StoreError(
            f"Database {str(path)!r} is empty (0 bytes), so it is not a durable "
            "database: durable never leaves an empty file, so it was truncated or "
            f"made by something else; {damage_advice(path)}, or delete it to start "
            "afresh"
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"Cannot read database {str(path)!r}: {exc}; it is damaged or not a "
            f"durable database: {damage_advice(path)}"
        ) from exc
    if app_id not in (0, APPLICATION_ID):
        raise StoreError(
            f"{str(path)!r} is an SQLite file of another application; "
            "point --db or DURABLE_DB at a durable database"
        )
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(path=str(path), found=version, supported=SCHEMA_VERSION)
    if version < 0:  # no durable writes that: migrating it would run MIGRATIONS[-1]
        raise StoreError(
            f"{str(path)!r} has schema version {version}, which no durable writes; the "
            "file is damaged or was changed by another program (restore it from a backup)"
        )


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
        _test_limits(conn)
    except sqlite3.DatabaseError as exc:
        raise open_error(path, exc) from exc
    return conn


def _test_limits(conn: sqlite3.Connection) -> None:
    # Two environment lookups per writer connection; unset outside the tests.
    if pages := os.environ.get(TEST_MAX_PAGE_COUNT):
        conn.execute(f"PRAGMA max_page_count={int(pages)}")
    if length := os.environ.get(TEST_LIMIT_LENGTH):
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, int(length))


def max_value_bytes(conn: sqlite3.Connection) -> int:
    """Return the largest value a row of this connection can hold with room to spare
    (SQLITE_LIMIT_LENGTH bounds a whole row; SQLITE_TOOBIG above it)."""
    return max(conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) - ROW_MARGIN, 0)


class GuardedConnection(sqlite3.Connection):
    """A read-only connection for a database that may be hostile (the CLI's, the
    doctor's): a row longer than `MAX_READ_LENGTH` is refused (SQLITE_TOOBIG) rather than
    loaded, so a 1 GB value cannot take 1 GB of memory (or ten times that in Python)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_READ_LENGTH)


class ReadBudget:
    """A progress handler that interrupts a statement running longer than `seconds`.

    Call `start()` before each statement; the connection then raises
    `sqlite3.OperationalError("interrupted")`. Bounds what a hostile schema (a view
    that recurses forever) can cost a reader.
    """

    STEPS = 10_000
    """SQLite virtual-machine steps between two checks (about a millisecond)."""

    def __init__(self, seconds: float = READ_BUDGET_SECONDS) -> None:
        self.seconds = seconds
        self.deadline = math.inf

    def start(self) -> None:
        """Give the next statement its `seconds`."""
        self.deadline = time.monotonic() + self.seconds

    def __call__(self) -> bool:
        return time.monotonic() > self.deadline

    def install(self, conn: sqlite3.Connection) -> None:
        """Check the budget on `conn` from now on."""
        conn.set_progress_handler(self, self.STEPS)


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
        raise open_error(path, exc) from exc
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
                threading.Event().wait(_JITTER.uniform(0.01, 0.1) * (attempt + 1))
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
        if version < 0:
            raise StoreError(f"{str(path)!r} has schema version {version}, which no "
                             "durable writes; it is not migrated")  # fmt: skip
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
            raise open_error(path, exc, "set up") from exc
