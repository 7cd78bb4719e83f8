"""The cache table: migration V2 and the store's cache entry operations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from durable.errors import StoreError
from durable.store import Store, connection
from durable.store.records import NewCacheEntry
from durable.store.schema import APPLICATION_ID, SCHEMA_VERSION, V1, V2

pytestmark = pytest.mark.anyio


def make_v1_database(db: Path) -> None:
    """Write a database as durable with schema version 1 left it, with one run in it."""
    with sqlite3.connect(db) as conn:
        conn.executescript(V1)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("PRAGMA user_version=1")
        conn.execute(
            "INSERT INTO flows (id, name, version, fingerprint, created_at)"
            " VALUES (1, 'f', 1, 'fp', 1.0)"
        )
        conn.execute(
            "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, state,"
            " parameters_serializer, created_at, updated_at)"
            " VALUES ('run1', 1, 'f', 'fp', 'Success', 'json', 1.0, 2.0)"
        )
        conn.execute(
            "INSERT INTO task_runs (id, flow_run_id, task_slug, task_name, state,"
            " updated_at) VALUES ('t1', 'run1', 'a', 'a', 'Success', 2.0)"
        )
        conn.execute(
            "INSERT INTO results (task_run_id, serializer, value, created_at)"
            " VALUES ('t1', 'json', '42', 2.0)"
        )


def schema_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def entry(
    key: str = "k", *, at: float, ttl: float = 60.0, index: int = -1
) -> NewCacheEntry:
    return NewCacheEntry(
        cache_key=key, map_index=index, flow_run_id="run1", task_run_id=f"t@{at}",
        serializer="json", value=f"{at}".encode(), hashed_inputs={"x": "h"},
        hashed_parameters={}, created_at=at, expires_at=at + ttl,
    )  # fmt: skip


class TestMigrationToV2:
    async def test_a_v1_database_gains_the_cache_table_and_keeps_its_data(
        self, db: Path
    ) -> None:
        make_v1_database(db)
        store = await Store.open(db)
        try:
            run = await store.get_flow_run("run1")
            assert [t.id for t in await store.list_task_runs("run1")] == ["t1"]
            assert store.load_result("t1") == 42
            store.save_cache_entry(entry(at=10.0))
            await store.flush()
            assert len(await store.find_cache_entries("k", -1, now=10.0)) == 1
        finally:
            await store.close()
        assert run.state == "Success"
        assert schema_version(db) == SCHEMA_VERSION

    async def test_a_failing_migration_leaves_the_v1_schema_untouched(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        make_v1_database(db)
        monkeypatch.setattr(connection, "MIGRATIONS", (V1, V2 + "CREATE TABLE (;"))
        with pytest.raises(StoreError, match="Cannot set up database"):
            await Store.open(db)
        assert schema_version(db) == 1
        assert "cache" not in tables(db)  # the whole migration rolled back


class TestCacheEntries:
    async def test_entries_come_newest_first_and_only_unexpired(self, db: Path) -> None:
        store = await Store.open(db)
        try:
            for at in (1.0, 2.0, 3.0):
                store.save_cache_entry(entry(at=at, ttl=10.0))
            await store.flush()
            found = await store.find_cache_entries("k", -1, now=11.5)
        finally:
            await store.close()
        assert [e.created_at for e in found] == [3.0, 2.0]
        assert found[0].hashed_inputs == {"x": "h"}
        assert found[0].expires_at == 13.0

    async def test_entries_are_found_by_key_and_map_index(self, db: Path) -> None:
        store = await Store.open(db)
        try:
            store.save_cache_entry(entry("k", at=1.0, index=0))
            store.save_cache_entry(entry("k", at=1.0, index=1))
            store.save_cache_entry(entry("other", at=1.0, index=0))
            await store.flush()
            found = await store.find_cache_entries("k", 1, now=2.0)
        finally:
            await store.close()
        assert [(e.cache_key, e.map_index) for e in found] == [("k", 1)]

    async def test_saving_an_entry_drops_the_expired_ones_of_its_key(
        self, db: Path
    ) -> None:
        store = await Store.open(db)
        try:
            store.save_cache_entry(entry("k", at=1.0, ttl=5.0))
            store.save_cache_entry(entry("other", at=1.0, ttl=5.0))
            store.save_cache_entry(entry("k", at=10.0))
            await store.flush()
        finally:
            await store.close()
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT cache_key, created_at FROM cache ORDER BY id")
            assert rows.fetchall() == [("other", 1.0), ("k", 10.0)]

    async def test_an_entry_survives_reopening_with_its_value(self, db: Path) -> None:
        store = await Store.open(db)
        store.save_cache_entry(entry(at=1.0))
        await store.close()
        store = await Store.open(db, readonly=True)
        try:
            (found,) = await store.find_cache_entries("k", -1, now=2.0)
            assert await store.load_cache_value(found.id) == ("json", b"1.0")
            assert await store.load_cache_value(found.id + 1) is None
        finally:
            await store.close()

    async def test_relative_targets_go_beside_the_database(self, db: Path) -> None:
        store = await Store.open(db)
        await store.close()
        assert store.results_dir == db.parent / "results"
