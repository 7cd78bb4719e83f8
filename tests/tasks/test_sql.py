"""SQL tasks against real SQLite files: bound values, fetch modes, transactions, flows."""

from __future__ import annotations

import sqlite3
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from durable import Flow, Parameter
from durable.tasks.sql import DBAPIQuery, SQLiteQuery, SQLiteScript


@pytest.fixture
def people(tmp_path: Path) -> Path:
    """A database file with a `people(name, age)` table of three rows."""
    path = tmp_path / "people.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE people(name TEXT, age INTEGER)")
        connection.executemany(
            "INSERT INTO people VALUES (?, ?)", [("ann", 31), ("bob", 25), ("cy", 47)]
        )
    connection.close()
    return path


def rows(db: Path, query: str) -> list[Any]:
    with sqlite3.connect(db) as connection:
        found = connection.execute(query).fetchall()
    connection.close()
    return found


class TestSQLiteQuery:
    def test_data_is_bound_to_placeholders(self, people: Path) -> None:
        query = SQLiteQuery(people, "SELECT name FROM people WHERE age > ? ORDER BY 1")
        assert query.run(data=(30,)) == [("ann",), ("cy",)]

    def test_named_placeholders_take_a_mapping(self, people: Path) -> None:
        query = SQLiteQuery(people, "SELECT age FROM people WHERE name = :name")
        assert query.run(data={"name": "bob"}) == [(25,)]

    def test_a_hostile_value_is_bound_not_executed(self, people: Path) -> None:
        hostile = "x'; DROP TABLE people; --"
        query = SQLiteQuery(people, "SELECT * FROM people WHERE name = ?", (hostile,))
        assert query.run() == []
        assert len(rows(people, "SELECT * FROM people")) == 3

    @pytest.mark.parametrize(
        ("fetch", "expected"),
        [
            ("all", [("ann",), ("bob",), ("cy",)]),
            ("one", ("ann",)),
            ("many", [("ann",), ("bob",)]),
        ],
    )
    def test_fetch_modes(self, people: Path, fetch: Any, expected: Any) -> None:
        query = SQLiteQuery(
            people, "SELECT name FROM people ORDER BY name", fetch=fetch, fetch_count=2
        )
        assert query.run() == expected

    def test_fetch_one_of_nothing_is_none(self, people: Path) -> None:
        query = SQLiteQuery(people, "SELECT 1 FROM people WHERE 0", fetch="one")
        assert query.run() is None

    def test_fetch_none_returns_the_row_count_and_commits(self, people: Path) -> None:
        query = SQLiteQuery(people, "UPDATE people SET age = age + 1", fetch="none")
        assert query.run() == 3
        assert rows(people, "SELECT age FROM people ORDER BY name") == [
            (32,),
            (26,),
            (48,),
        ]

    def test_as_dict_keys_rows_by_column(self, people: Path) -> None:
        query = SQLiteQuery(
            people, "SELECT name, age FROM people WHERE name = ?", ("cy",), as_dict=True
        )
        assert query.run() == [{"name": "cy", "age": 47}]

    def test_run_arguments_override_init_values(self, people: Path) -> None:
        query = SQLiteQuery("missing.db", "SELECT 1", fetch="one")
        assert query.run(db=people, query="SELECT count(*) FROM people") == (3,)

    def test_an_unknown_fetch_mode_is_refused(self) -> None:
        with pytest.raises(ValueError, match="'every' is not a fetch mode"):
            SQLiteQuery("x.db", "SELECT 1", fetch="every")  # type: ignore[arg-type]

    def test_a_failing_query_raises_the_driver_error(self, people: Path) -> None:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            SQLiteQuery(people, "SELECT * FROM nowhere").run()

    def test_no_database_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="has no database file"):
            SQLiteQuery(query="SELECT 1").run()


class TestSQLiteScript:
    def test_runs_every_statement(self, tmp_path: Path) -> None:
        db = tmp_path / "new.db"
        SQLiteScript(
            db, "CREATE TABLE t(x); INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)"
        ).run()
        assert rows(db, "SELECT x FROM t") == [(1,), (2,)]

    def test_a_trailing_comment_does_not_swallow_the_commit(
        self, tmp_path: Path
    ) -> None:
        db = tmp_path / "new.db"
        SQLiteScript(db, "CREATE TABLE t(x); -- the end").run()
        assert rows(db, "SELECT count(*) FROM t") == [(0,)]

    def test_a_failing_statement_rolls_the_whole_script_back(
        self, people: Path
    ) -> None:
        script = """
            INSERT INTO people VALUES ('dee', 52);
            CREATE TABLE extra(x);
            DELETE FROM people WHERE name = 'ann';
            INSERT INTO nowhere VALUES (1);
        """
        with pytest.raises(sqlite3.OperationalError, match="no such table: nowhere"):
            SQLiteScript(people, script).run()
        assert rows(people, "SELECT name FROM people ORDER BY name") == [
            ("ann",),
            ("bob",),
            ("cy",),
        ]
        assert rows(people, "SELECT name FROM sqlite_master WHERE name = 'extra'") == []


class TestDBAPIQuery:
    def test_sqlite3_connect_as_the_connect_callable(self, people: Path) -> None:
        query = DBAPIQuery(
            partial(sqlite3.connect, people),
            "SELECT name FROM people WHERE age < ?",
            (30,),
        )
        assert query.run() == [("bob",)]

    def test_commit_persists_and_commit_false_does_not(self, people: Path) -> None:
        insert = DBAPIQuery(
            partial(sqlite3.connect, people),
            "INSERT INTO people VALUES (?, ?)",
            fetch="none",
        )
        assert insert.run(data=("kept", 1)) == 1
        assert insert.run(data=("dropped", 2), commit=False) == 1
        assert rows(people, "SELECT name FROM people WHERE age < 3") == [("kept",)]

    def test_the_connection_is_closed_also_on_error(self, people: Path) -> None:
        opened: list[sqlite3.Connection] = []

        def connect() -> sqlite3.Connection:
            opened.append(sqlite3.connect(people))
            return opened[-1]

        query = DBAPIQuery(connect, "SELECT nothing FROM nowhere")
        with pytest.raises(sqlite3.OperationalError):
            query.run()
        assert query.run(query="SELECT 1") == [(1,)]
        for connection in opened:
            with pytest.raises(sqlite3.ProgrammingError, match="closed"):
                connection.execute("SELECT 1")


class TestInFlows:
    def test_script_then_inserts_then_query(self, db: Path, tmp_path: Path) -> None:
        data = tmp_path / "app.db"
        create = SQLiteScript(data, "CREATE TABLE users(name TEXT, age INTEGER);")
        insert = SQLiteQuery(data, "INSERT INTO users VALUES (?, ?)", fetch="none")
        select = SQLiteQuery(data, "SELECT name, age FROM users", as_dict=True)
        with Flow("sql") as flow:
            created = create()
            inserted = insert(data=Parameter("user"), upstream_tasks=[created])
            found = select(upstream_tasks=[inserted])
        state = flow.run(db=db, user=("ann", 31))
        assert state.is_successful()
        assert state.result[found].result == [{"name": "ann", "age": 31}]

    def test_dbapi_query_in_a_flow(self, db: Path, people: Path) -> None:
        with Flow("dbapi") as flow:
            count = DBAPIQuery(
                partial(sqlite3.connect, people),
                "SELECT count(*) FROM people",
                fetch="one",
            )()
        assert flow.run(db=db).result[count].result == (3,)
