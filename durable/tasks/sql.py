"""SQL tasks: SQLite queries and scripts, and any DB-API driver, as Prefect 1's SQL tasks.

Each run opens its own connection and closes it when done, also on error, so a task can
run on any thread or in a worker process. Values are always bound through the driver's
placeholders, never formatted into the SQL.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from typing import Any, Literal, Protocol, Unpack

from durable.core.task import Task, TaskOptions

__all__ = ["DBAPIQuery", "Fetch", "SQLiteQuery", "SQLiteScript"]

Fetch = Literal["all", "one", "many", "none"]
"""What a query returns: every row, the first row, `fetch_count` rows, or the row count."""

FETCH_MODES: tuple[Fetch, ...] = ("all", "one", "many", "none")

Data = Sequence[Any] | Mapping[str, Any]
"""Values bound to a query's placeholders: a sequence (`?`) or a mapping (`:name`)."""


class Cursor(Protocol):
    """The part of a DB-API 2.0 cursor the tasks use."""

    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...

    @property
    def rowcount(self) -> int: ...

    def execute(self, operation: Any, parameters: Any = ..., /) -> object: ...

    def fetchall(self) -> Sequence[Any]: ...

    def fetchone(self) -> Any: ...

    def fetchmany(self, size: int = ..., /) -> Sequence[Any]: ...

    def close(self) -> object: ...


class Connection(Protocol):
    """The part of a DB-API 2.0 connection the tasks use."""

    def cursor(self) -> Any: ...

    def commit(self) -> object: ...

    def rollback(self) -> object: ...

    def close(self) -> object: ...


class _Query(Task):
    """What the query tasks share: the query, its data and how to fetch the result."""

    def __init__(
        self,
        query: str | None,
        data: Data,
        fetch: Fetch,
        fetch_count: int,
        as_dict: bool,
        task_kwargs: TaskOptions,
    ) -> None:
        self.query = query
        """The default query."""
        self.data = data
        """The default values bound to the query's placeholders."""
        self.fetch = _check_fetch(fetch)
        """What the query returns: "all", "one", "many" or "none" (the row count)."""
        self.fetch_count = fetch_count
        """How many rows `fetch="many"` returns."""
        self.as_dict = as_dict
        """Return each row as a dict keyed by column name, not a tuple."""
        super().__init__(**task_kwargs)

    def _execute(
        self,
        connection: Connection,
        query: str | None,
        data: Data | None,
        fetch: Fetch | None,
        fetch_count: int | None,
    ) -> Any:
        query = self.query if query is None else query
        if not query:
            raise ValueError(
                f"Task {self.name!r} has no query to run; pass one to the task or "
                "when calling it"
            )
        with closing(connection.cursor()) as cursor:
            cursor.execute(query, self.data if data is None else data)
            return _fetch(
                cursor,
                _check_fetch(self.fetch if fetch is None else fetch),
                self.fetch_count if fetch_count is None else fetch_count,
                self.as_dict,
            )


class SQLiteQuery(_Query):
    """Run one SQL statement against a SQLite database file and return its rows.

    The statement runs in a transaction that is committed when it succeeds and rolled
    back when it fails, so `INSERT`/`UPDATE` statements persist. Values in `data` are
    bound to `?` (a sequence) or `:name` (a mapping) placeholders.

    ```python
    names = SQLiteQuery("app.db", "SELECT name FROM users WHERE age > ?", (30,))
    ```

    As in Prefect 1, the values given here are defaults that `run()` arguments override.

    Args:
        db: The database file (created if missing).
        query: One SQL statement.
        data: The values bound to its placeholders.
        fetch: "all" (a list of rows), "one" (the first row, or None), "many" (a list
            of at most `fetch_count` rows) or "none" (the cursor's row count: how many
            rows an `INSERT`, `UPDATE` or `DELETE` changed).
        fetch_count: How many rows `fetch="many"` returns.
        as_dict: Return rows as dicts keyed by column name, not tuples.
        **task_kwargs: Task options (`name`, `max_retries`, `timeout`, ...).
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        query: str | None = None,
        data: Data = (),
        *,
        fetch: Fetch = "all",
        fetch_count: int = 10,
        as_dict: bool = False,
        **task_kwargs: Unpack[TaskOptions],
    ) -> None:
        self.db = db
        """The default database file."""
        super().__init__(query, data, fetch, fetch_count, as_dict, task_kwargs)

    def run(
        self,
        db: str | os.PathLike[str] | None = None,
        query: str | None = None,
        data: Data | None = None,
        fetch: Fetch | None = None,
        fetch_count: int | None = None,
    ) -> Any:
        """Run the query in its own connection and return what `fetch` asks for."""
        connection = _connect_sqlite(self, self.db if db is None else db)
        # The connection as a context manager commits, or rolls back on error.
        with closing(connection), connection:
            return self._execute(connection, query, data, fetch, fetch_count)


class SQLiteScript(Task):
    """Run a SQL script (several statements) against a SQLite file, in one transaction.

    A statement that fails rolls the whole script back: the database is left as it was.
    The script must therefore not use `BEGIN`, `COMMIT` or `ROLLBACK` itself. It cannot
    take bound values: to insert values, use `SQLiteQuery`.

    ```python
    setup = SQLiteScript("app.db", "CREATE TABLE users(name, age); CREATE INDEX ...;")
    ```

    Args:
        db: The database file (created if missing).
        script: The SQL statements, separated by `;`.
        **task_kwargs: Task options (`name`, `max_retries`, `timeout`, ...).
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        script: str | None = None,
        **task_kwargs: Unpack[TaskOptions],
    ) -> None:
        self.db = db
        """The default database file."""
        self.script = script
        """The default script."""
        super().__init__(**task_kwargs)

    def run(
        self, db: str | os.PathLike[str] | None = None, script: str | None = None
    ) -> None:
        """Run the script in one transaction: all of it, or none of it."""
        script = self.script if script is None else script
        if not script:
            raise ValueError(
                f"Task {self.name!r} has no script to run; pass one to the task or "
                "when calling it"
            )
        with closing(
            _connect_sqlite(self, self.db if db is None else db)
        ) as connection:
            # Autocommit mode, so executescript adds no COMMIT of its own: the script
            # runs between our BEGIN and COMMIT. The newline ends a trailing comment.
            connection.isolation_level = None
            try:
                connection.executescript(f"BEGIN;\n{script}\n;\nCOMMIT;")
            except Exception:
                if connection.in_transaction:
                    connection.rollback()
                raise


class DBAPIQuery(_Query):
    """Run one SQL statement through any DB-API 2.0 driver and return its rows.

    `connect` is called for each run and must return a new connection (for example
    `functools.partial(psycopg.connect, dsn)` or `lambda: sqlite3.connect(path)`); the
    task closes it when done. Placeholders follow the driver's `paramstyle` (`?`, `%s`,
    `:name`...). With `commit=True` the statement is committed after it runs; a failed
    statement is rolled back either way.

    ```python
    rows = DBAPIQuery(connect=lambda: sqlite3.connect("app.db"), query="SELECT 1")
    ```

    Args:
        connect: Called with no arguments; returns a DB-API connection.
        query: One SQL statement.
        data: The values bound to its placeholders.
        fetch: "all", "one", "many" or "none", as for `SQLiteQuery`.
        fetch_count: How many rows `fetch="many"` returns.
        commit: Commit after the statement (False: leave it to the connection's
            close, which in DB-API rolls back).
        as_dict: Return rows as dicts keyed by column name, not tuples.
        **task_kwargs: Task options (`name`, `max_retries`, `timeout`, ...).
    """

    def __init__(
        self,
        connect: Callable[[], Connection] | None = None,
        query: str | None = None,
        data: Data = (),
        *,
        fetch: Fetch = "all",
        fetch_count: int = 10,
        commit: bool = True,
        as_dict: bool = False,
        **task_kwargs: Unpack[TaskOptions],
    ) -> None:
        self.connect = connect
        """Returns a new connection for each run."""
        self.commit = commit
        """Commit after the statement runs."""
        super().__init__(query, data, fetch, fetch_count, as_dict, task_kwargs)

    def run(
        self,
        query: str | None = None,
        data: Data | None = None,
        fetch: Fetch | None = None,
        fetch_count: int | None = None,
        commit: bool | None = None,
    ) -> Any:
        """Run the query on a new connection and return what `fetch` asks for."""
        if self.connect is None:
            raise ValueError(
                f"DBAPIQuery {self.name!r} has no connect function; pass connect= "
                "returning a DB-API connection"
            )
        with closing(self.connect()) as connection:
            try:
                result = self._execute(connection, query, data, fetch, fetch_count)
                if self.commit if commit is None else commit:
                    connection.commit()
            except Exception:
                connection.rollback()
                raise
            return result


def _connect_sqlite(
    task: Task, db: str | os.PathLike[str] | None
) -> sqlite3.Connection:
    if db is None:
        raise ValueError(
            f"Task {task.name!r} has no database file; pass db= to the task or "
            "when calling it"
        )
    return sqlite3.connect(db)


def _check_fetch(fetch: str) -> Fetch:
    if fetch not in FETCH_MODES:
        raise ValueError(
            f"fetch={fetch!r} is not a fetch mode; use one of "
            + ", ".join(repr(mode) for mode in FETCH_MODES)
        )
    return fetch


def _fetch(cursor: Cursor, fetch: Fetch, count: int, as_dict: bool) -> Any:
    if fetch == "none":
        return cursor.rowcount
    if fetch == "one":
        row = cursor.fetchone()
        return _as_dict(cursor, row) if as_dict and row is not None else row
    rows = list(cursor.fetchall() if fetch == "all" else cursor.fetchmany(count))
    return [_as_dict(cursor, row) for row in rows] if as_dict else rows


def _as_dict(cursor: Cursor, row: Sequence[Any]) -> dict[str, Any]:
    names = [column[0] for column in cursor.description or ()]
    return dict(zip(names, row, strict=True))
