"""The read model's connection: one read-only SQLite connection to a durable database,
checked (durable's, not too new), with `PRAGMA data_version` as the change check and
one snapshot per call. `ReadModel` builds its queries on it."""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from durable.errors import DurableError, SchemaTooNewError, StoreError
from durable.store.connection import GuardedConnection, damage_advice, is_damage
from durable.store.schema import APPLICATION_ID, SCHEMA_VERSION

BUSY_TIMEOUT_MS = 2_000
"""How long a read waits for a writer's lock (a WAL reader only waits on recovery)."""


class ModelError(DurableError):
    """The database cannot be read: missing, not durable's, too new, or unreadable."""


class NewerDatabaseError(ModelError, SchemaTooNewError):
    """Written by a newer durable: refused as the CLI refuses it (exit 5)."""


class DamagedDatabaseError(ModelError, StoreError):
    """The file is damaged (or empty): the CLI exits 3, the TUI's header says so."""

    def __init__(self, path: Path, problem: object) -> None:
        super().__init__(f"Database {str(path)!r} is {problem}: {damage_advice(path)}")


class ModelConnection:
    """One read-only connection, safe from any thread one call at a time (a lock)."""

    def __init__(self, db: str | Path) -> None:
        self.path = Path(db).expanduser()
        """The database file."""
        self.queries = 0
        """How many SQL statements this model has executed."""
        self._lock = threading.Lock()
        self._data_version: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._conn = self._open()
        try:
            self.version = self._check()
            """The database's schema version (`PRAGMA user_version`)."""
            self._columns = self._read_columns()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (calling it again does nothing)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # Change detection --------------------------------------------------------------
    def changed(self) -> bool:
        """Whether another connection has committed since the last call (True the
        first time): one `PRAGMA data_version`, so an idle poll costs almost nothing.

        The answer is per model: callers sharing a model share one "last call".
        """
        with self._lock:
            version = int(self._fetch("PRAGMA data_version")[0][0])
            changed, self._data_version = version != self._data_version, version
            return changed

    # Connection --------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        path = self.path
        if not path.is_file():
            raise ModelError(
                f"No database at {str(path)!r}; run a flow first, or pass --db"
            )
        if path.stat().st_size == 0:
            raise DamagedDatabaseError(path, "empty (0 bytes), not a durable database")
        try:
            # Guarded: a row over MAX_READ_LENGTH is refused, not loaded (G6).
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None,
                timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False,
                factory=GuardedConnection,
            )  # fmt: skip
        except sqlite3.Error as exc:
            raise ModelError(f"Cannot open database {str(path)!r}: {exc}") from exc
        return conn

    def _check(self) -> int:
        try:
            self._fetch(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._fetch("PRAGMA query_only=ON")
            self._fetch("PRAGMA trusted_schema=OFF")
            app_id = self._fetch("PRAGMA application_id")[0][0]
            version = int(self._fetch("PRAGMA user_version")[0][0])
        except ModelError as exc:
            if isinstance(exc, DamagedDatabaseError) or isinstance(
                exc.__cause__, sqlite3.OperationalError
            ):
                raise  # damaged, locked or unreachable: says so already
            raise ModelError(
                f"{str(self.path)!r} is not a durable database ({exc.__cause__})"
            ) from exc.__cause__
        if app_id != APPLICATION_ID or version < 1:
            raise ModelError(
                f"{str(self.path)!r} is not a durable database; point --db or "
                "DURABLE_DB at the file durable writes"
            )
        if version > SCHEMA_VERSION:
            raise NewerDatabaseError(
                path=str(self.path), found=version, supported=SCHEMA_VERSION
            )
        return version

    def _read_columns(self) -> dict[str, set[str]]:
        columns: defaultdict[str, set[str]] = defaultdict(set)
        for table, column in self._fetch(
            "SELECT m.name, p.name FROM sqlite_master m, pragma_table_info(m.name) p"
            " WHERE m.type = 'table'"
        ):
            columns[table].add(column)
        return dict(columns)

    def _has(self, table: str, column: str | None = None) -> bool:
        found = self._columns.get(table)
        return found is not None and (column is None or column in found)

    def _fetch(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        if self._conn is None:
            raise ModelError(f"The read model of {str(self.path)!r} is closed")
        self.queries += 1
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            if is_damage(exc):
                problem = f"damaged or not a durable database ({exc})"
                raise DamagedDatabaseError(self.path, problem) from exc
            raise ModelError(f"Cannot read database {str(self.path)!r}: {exc}") from exc

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        # The statements of one call read one snapshot; COMMIT ends it, so no read
        # transaction outlives the call (a WAL checkpoint can always proceed).
        self._fetch("BEGIN")
        try:
            yield
        finally:
            if self._conn is not None and self._conn.in_transaction:
                self._fetch("COMMIT")
