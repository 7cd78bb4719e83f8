"""The store: file setup, PRAGMAs, migrations, refusal of newer schemas, ordered commits."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

import pytest

from durable.errors import RunNotFoundError, SchemaTooNewError, StoreError
from durable.store import NewTaskRun, Store, Transition
from durable.store.connection import default_db_path
from durable.store.schema import APPLICATION_ID, SCHEMA_VERSION

pytestmark = pytest.mark.anyio


def read_bytes(path: Path) -> bytes:
    return path.read_bytes()


def write_bytes(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def exists(path: Path) -> bool:
    return path.exists()


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def transition(name: str, at: float, *, finished: bool = False) -> Transition:
    return Transition(name, None, at, None, finished)


async def make_run(store: Store, run_id: str = "run1", tasks: int = 2) -> list[str]:
    ids = [f"{run_id}-t{i}" for i in range(tasks)]
    store.create_flow_run(
        run_id=run_id, flow_name="f", fingerprint="fp", source_path=None,
        parameters=b"{}", parameters_serializer="json",
        transition=transition("Pending", 1.0),
        task_runs=[NewTaskRun(i, f"slug-{n}", "t") for n, i in enumerate(ids)],
    )  # fmt: skip
    await store.flush()
    return ids


class TestOpening:
    async def test_new_database_file_is_private_and_in_wal_mode(self, db: Path) -> None:
        store = await Store.open(db)
        await store.close()
        assert file_mode(db) == 0o600
        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID

    async def test_writer_uses_full_sync_by_default_and_normal_on_request(
        self, db: Path
    ) -> None:
        for durability, expected in (("full", 2), ("normal", 1)):
            store = await Store.open(db, durability=durability)  # type: ignore[arg-type]
            level = store.writer._conn.execute("PRAGMA synchronous").fetchone()[0]
            await store.close()
            assert level == expected

    async def test_database_from_a_newer_durable_is_refused_untouched(
        self, db: Path
    ) -> None:
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE future (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        conn.close()
        before = hashlib.sha256(read_bytes(db)).hexdigest()
        with pytest.raises(SchemaTooNewError) as caught:
            await Store.open(db)
        assert caught.value.found == SCHEMA_VERSION + 1
        assert "newer durable" in str(caught.value)
        assert hashlib.sha256(read_bytes(db)).hexdigest() == before
        assert not exists(Path(f"{db}-wal"))

    async def test_a_file_that_is_not_a_database_is_refused_untouched(
        self, db: Path
    ) -> None:
        before = b"\xff\xd8\xff\xe0 this is a jpeg, not a database" * 100
        write_bytes(db, before)
        with pytest.raises(StoreError, match=r"not a durable database|damaged"):
            await Store.open(db)
        assert read_bytes(db) == before

    async def test_readonly_open_of_a_missing_database_says_so(self, db: Path) -> None:
        with pytest.raises(StoreError, match="No database"):
            await Store.open(db, readonly=True)
        assert not exists(db)

    def test_default_path_follows_durable_db_then_durable_home(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("DURABLE_HOME", str(tmp_path / "home"))
        assert default_db_path() == tmp_path / "home" / "durable.db"
        monkeypatch.setenv("DURABLE_DB", str(tmp_path / "x.db"))
        assert default_db_path() == tmp_path / "x.db"


class TestWrites:
    async def test_result_and_success_commit_together(self, db: Path) -> None:
        store = await Store.open(db)
        ids = await make_run(store)
        store.record_task_state(
            "run1", ids[0], transition("Success", 2.0, finished=True), attempts=1,
            result=("json", b"42"),
        )  # fmt: skip
        await store.flush()
        assert store.load_result(ids[0]) == 42
        [first, second] = await store.list_task_runs("run1")
        assert (first.state, first.has_result, first.attempts) == ("Success", True, 1)
        assert second.state == "Pending"
        await store.close()

    async def test_history_keeps_every_transition_in_order(self, db: Path) -> None:
        store = await Store.open(db)
        ids = await make_run(store)
        for n, name in enumerate(["Running", "Retrying", "Running", "Success"]):
            store.record_task_state(
                "run1", ids[0], transition(name, 2.0 + n, finished=name == "Success"),
                attempts=1 + (n >= 2),
            )  # fmt: skip
        await store.flush()
        history = [s.name for s in await store.list_states("run1") if s.task_run_id]
        assert history == ["Running", "Retrying", "Running", "Success"]
        await store.close()

    async def test_a_failed_batch_is_reported_and_nothing_of_it_lands(
        self, db: Path
    ) -> None:
        store = await Store.open(db)
        await make_run(store)
        store.writer.submit(lambda conn: conn.execute("INSERT INTO nowhere VALUES (1)"))
        with pytest.raises(StoreError, match="Writing to the database failed"):
            await store.flush()
        with pytest.raises(StoreError):
            store.writer.submit(lambda conn: None)
        await store._reader.close()

    async def test_queued_logs_are_committed_on_close(self, db: Path) -> None:
        store = await Store.open(db)
        await make_run(store)
        store.add_log(("run1", None, 3.0, 20, "x", "hello"))
        await store.close()
        store = await Store.open(db, readonly=True)
        assert [log.message for log in await store.list_logs("run1")] == ["hello"]
        await store.close()


class TestReads:
    async def test_runs_are_found_by_unique_prefix(self, db: Path) -> None:
        store = await Store.open(db)
        await make_run(store, "abc123")
        await make_run(store, "abd456")
        assert (await store.get_flow_run("abc")).id == "abc123"
        with pytest.raises(RunNotFoundError, match="several"):
            await store.get_flow_run("ab")
        with pytest.raises(RunNotFoundError):
            await store.get_flow_run("zzz")
        assert await store.find_flow_run("abc") is None
        await store.close()

    async def test_runs_are_listed_newest_first_and_filtered(self, db: Path) -> None:
        store = await Store.open(db)
        for n in range(3):
            store.create_flow_run(
                run_id=f"r{n}", flow_name="a" if n < 2 else "b", fingerprint="fp",
                source_path=None, parameters=b"{}", parameters_serializer="json",
                transition=transition("Pending", float(n)), task_runs=[],
            )  # fmt: skip
        await store.flush()
        assert [r.id for r in await store.list_flow_runs()] == ["r2", "r1", "r0"]
        assert [r.id for r in await store.list_flow_runs(flow_name="a", limit=1)] == [
            "r1"
        ]
        assert [r.flow_version for r in await store.list_flow_runs()] == [1, 1, 1]
        await store.close()
