"""The flow registry: migration V4, registered versions, the flow listing, loaded copies."""

from __future__ import annotations

import importlib
import sqlite3
import sys
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio.to_thread
import cloudpickle
import pytest

from durable import Flow, task
from durable.store import NewTaskRun, Store, Transition
from durable.store.packaging import package_flow
from durable.store.records import NewRegistration
from durable.store.registry import load_copy
from durable.store.schema import APPLICATION_ID, SCHEMA_VERSION, V1, V2, V3

pytestmark = pytest.mark.anyio


def registration(
    name: str = "f",
    *,
    fingerprint: str = "fp",
    flow_hash: str = "h1",
    at: float = 10.0,
    schedule: bytes | None = None,
    schedule_text: str | None = None,
) -> NewRegistration:
    return NewRegistration(
        name=name, fingerprint=fingerprint, source_path="/flows/f.py",
        flow_blob=b"copy", flow_hash=flow_hash, schedule=schedule,
        schedule_text=schedule_text, registered_at=at,
    )  # fmt: skip


def start_run(
    store: Store, run_id: str, *, name: str = "f", fingerprint: str = "fp", at: float
) -> None:
    store.create_flow_run(
        run_id=run_id, flow_name=name, fingerprint=fingerprint, source_path=None,
        parameters=b"{}", parameters_serializer="json",
        transition=Transition("Pending", None, at, None, False),
        task_runs=[NewTaskRun(f"{run_id}-t", "a", "a")],
    )  # fmt: skip


def flow_rows(db: Path) -> list[tuple[Any, ...]]:
    """Every row of `flows`: (name, version, fingerprint, registered?)."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT name, version, fingerprint, registered_at IS NOT NULL FROM flows"
            " ORDER BY name, version"
        ).fetchall()


def schema_version(db: Path) -> int:
    with closing(sqlite3.connect(db)) as conn:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


@pytest.fixture
async def store(db: Path) -> AsyncIterator[Store]:
    opened = await Store.open(db)
    try:
        yield opened
    finally:
        await opened.close()


@task
def double(x: int) -> int:
    return x * 2


def doubling_flow() -> Flow:
    with Flow("doubling") as flow:
        double(21)
    return flow


# Migration -------------------------------------------------------------------------------
def make_v3_database(db: Path) -> None:
    """Write a database as durable with schema version 3 left it, with one run in it."""
    with closing(sqlite3.connect(db)) as conn, conn:
        for script in (V1, V2, V3):
            conn.executescript(script)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute("PRAGMA user_version=3")
        conn.execute(
            "INSERT INTO flows (id, name, version, fingerprint, source_path, created_at)"
            " VALUES (1, 'f', 1, 'fp', '/flows/f.py', 1.0)"
        )
        conn.execute(
            "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, state,"
            " parameters_serializer, created_at, started_at, updated_at)"
            " VALUES ('run1', 1, 'f', 'fp', 'Success', 'json', 1.0, 1.5, 2.0)"
        )
        conn.execute(
            "INSERT INTO task_runs (id, flow_run_id, task_slug, task_name, state,"
            " updated_at, run_name) VALUES ('t1', 'run1', 'a', 'a', 'Success', 2.0, 'A')"
        )
        conn.execute(
            "INSERT INTO results (task_run_id, serializer, value, created_at)"
            " VALUES ('t1', 'json', '42', 2.0)"
        )


class TestMigrationToV4:
    async def test_a_v3_database_keeps_its_rows_and_can_register(
        self, db: Path
    ) -> None:
        make_v3_database(db)
        store = await Store.open(db)
        try:
            run = await store.get_flow_run("run1")
            task_runs = await store.list_task_runs("run1")
            result = store.load_result("t1")
            listed = await store.list_flows()
            registered = await store.register_flow(registration(fingerprint="fp"))
        finally:
            await store.close()
        assert (run.flow_version, run.state, result) == (1, "Success", 42)
        assert [t.run_name for t in task_runs] == ["A"]
        assert [(f.name, f.version, f.registered_version) for f in listed] == [
            ("f", 1, None)
        ]
        # The run's row is not a registration: registering makes a version of its own.
        assert (registered.version, registered.is_new) == (2, True)
        assert flow_rows(db) == [("f", 1, "fp", 0), ("f", 2, "fp", 1)]
        assert schema_version(db) == SCHEMA_VERSION

    async def test_a_v3_database_opened_read_only_lists_flows_without_migrating(
        self, db: Path
    ) -> None:
        make_v3_database(db)
        store = await Store.open(db, readonly=True)
        try:
            listed = await store.list_flows()
            loaded = await store.load_registered_flow("f")
        finally:
            await store.close()
        assert [(f.name, f.version, f.last_run_state) for f in listed] == [
            ("f", 1, "Success")
        ]
        assert listed[0].registered_version is None
        assert loaded is None
        assert schema_version(db) == 3


# Registering -----------------------------------------------------------------------------
class TestRegisterFlow:
    async def test_the_first_registration_is_version_1(self, store: Store) -> None:
        registered = await store.register_flow(registration())

        assert (registered.name, registered.version, registered.is_new) == (
            "f",
            1,
            True,
        )

    async def test_an_unchanged_flow_keeps_its_version(
        self, store: Store, db: Path
    ) -> None:
        await store.register_flow(registration(at=10.0))

        again = await store.register_flow(registration(at=20.0))

        assert (again.version, again.is_new) == (1, False)
        assert flow_rows(db) == [("f", 1, "fp", 1)]

    @pytest.mark.parametrize(
        ("fingerprint", "flow_hash"),
        [("fp", "h2"), ("fp2", "h1")],
        ids=["hash", "shape"],
    )
    async def test_a_changed_flow_gets_the_next_version(
        self, store: Store, fingerprint: str, flow_hash: str
    ) -> None:
        await store.register_flow(registration(fingerprint="fp", flow_hash="h1"))

        changed = await store.register_flow(
            registration(fingerprint=fingerprint, flow_hash=flow_hash)
        )

        assert (changed.version, changed.is_new) == (2, True)

    async def test_flows_are_versioned_by_name(self, store: Store) -> None:
        first = await store.register_flow(registration("a"))
        second = await store.register_flow(registration("b"))

        assert (first.version, second.version) == (1, 1)

    async def test_a_run_of_the_registered_flow_uses_the_registered_version(
        self, store: Store, db: Path
    ) -> None:
        await store.register_flow(registration(fingerprint="fp"))
        start_run(store, "run1", fingerprint="fp", at=11.0)
        await store.flush()

        run = await store.get_flow_run("run1")
        again = await store.register_flow(registration(fingerprint="fp"))

        assert run.flow_version == 1
        assert (again.version, again.is_new) == (1, False)
        assert flow_rows(db) == [("f", 1, "fp", 1)]

    async def test_a_run_of_a_changed_shape_makes_an_unregistered_version(
        self, store: Store, db: Path
    ) -> None:
        await store.register_flow(registration(fingerprint="fp"))
        start_run(store, "run1", fingerprint="local-edit", at=11.0)
        await store.flush()

        # The latest version is the run's: registering the flow again makes v3, so a
        # run of the registered flow is never filed under the edited shape's version.
        again = await store.register_flow(registration(fingerprint="fp"))

        assert (again.version, again.is_new) == (3, True)
        assert flow_rows(db) == [
            ("f", 1, "fp", 1),
            ("f", 2, "local-edit", 0),
            ("f", 3, "fp", 1),
        ]


# Listing ---------------------------------------------------------------------------------
class TestListFlows:
    async def test_an_empty_database_lists_no_flows(self, store: Store) -> None:
        assert await store.list_flows() == []

    async def test_each_name_shows_its_latest_version_registration_and_run(
        self, store: Store
    ) -> None:
        await store.register_flow(
            registration("b", schedule=b"pickled", schedule_text="every hour", at=5.0)
        )
        start_run(store, "r1", name="b", fingerprint="edited", at=6.0)
        start_run(store, "r2", name="b", fingerprint="edited", at=7.0)
        start_run(store, "r3", name="a", fingerprint="fp", at=8.0)
        await store.flush()

        a, b = await store.list_flows()

        assert (a.name, a.version, a.registered_version, a.schedule) == (
            "a",
            1,
            None,
            None,
        )
        assert (a.last_run_id, a.last_run_state, a.last_run_at) == (
            "r3",
            "Pending",
            8.0,
        )
        assert (b.name, b.version, b.registered_version) == ("b", 2, 1)
        assert (b.registered_at, b.source_path) == (5.0, "/flows/f.py")
        assert (b.schedule, b.schedule_text) == (b"pickled", "every hour")
        assert b.last_run_id == "r2"


# Loading ---------------------------------------------------------------------------------
class TestLoadRegisteredFlow:
    async def test_the_loaded_copy_is_the_same_flow_and_runs(
        self, store: Store, db: Path
    ) -> None:
        flow = doubling_flow()
        await store.register_flow(package_flow(flow, file=None, registered_at=1.0))

        loaded = await store.load_registered_flow("doubling")

        assert loaded is not None
        assert (loaded.name, loaded.version) == ("doubling", 1)
        assert loaded.flow is not flow
        assert loaded.flow.fingerprint() == flow.fingerprint() == loaded.fingerprint
        state = await anyio.to_thread.run_sync(lambda: loaded.flow.run(db=db))
        assert state.is_successful()
        assert [s.result for s in state.result.values()] == [42]
        assert (await store.list_flow_runs())[0].flow_version == 1

    async def test_the_latest_registered_version_loads_unless_one_is_named(
        self, store: Store
    ) -> None:
        for n, fingerprint in enumerate(["fp1", "fp2"], start=1):
            blob = cloudpickle.dumps(f"copy {n}")
            await store.register_flow(
                replace(registration(fingerprint=fingerprint), flow_blob=blob)
            )
        start_run(store, "run1", fingerprint="unregistered", at=20.0)  # makes v3
        await store.flush()

        latest = await store.load_registered_flow("f")
        first = await store.load_registered_flow("f", version=1)

        assert latest is not None
        assert (latest.version, latest.flow) == (2, "copy 2")
        assert first is not None
        assert (first.version, first.flow) == (1, "copy 1")
        assert await store.load_registered_flow("f", version=3) is None
        assert await store.load_registered_flow("nope") is None

    async def test_a_copy_whose_module_is_gone_raises_what_unpickling_raises(
        self, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        blob = pickle_by_reference(tmp_path, monkeypatch, "vanishing")
        await store.register_flow(replace(registration(), flow_blob=blob))
        (tmp_path / "vanishing.py").unlink()
        importlib.invalidate_caches()

        with pytest.raises(ModuleNotFoundError, match="vanishing"):
            await store.load_registered_flow("f")


def test_load_copy_finds_modules_beside_the_flow_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blob = pickle_by_reference(tmp_path, monkeypatch, "beside")
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(tmp_path)])

    loaded = load_copy(blob, str(tmp_path / "flow.py"))

    assert loaded() == "beside"
    assert sys.path[0] == str(tmp_path)


def pickle_by_reference(
    folder: Path, monkeypatch: pytest.MonkeyPatch, module: str
) -> bytes:
    """Pickle a function of a module in `folder`, then forget the module was imported."""
    (folder / f"{module}.py").write_text(f"def which():\n    return {module!r}\n")
    monkeypatch.syspath_prepend(str(folder))
    imported = __import__(module)
    blob: bytes = cloudpickle.dumps(
        imported.which
    )  # by reference: an importable module
    del sys.modules[module]
    return blob
