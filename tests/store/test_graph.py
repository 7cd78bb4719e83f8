"""Each flow version's graph (`flows.graph`): stored once per version, by a run or a
registration, readable as JSON without loading the flow."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import durable.engine.flow_runner
from durable import Flow, flatten, task, unmapped
from durable.core.identity import shape
from durable.engine.flow_runner import run_flow_async
from durable.store import Store
from durable.store.packaging import package_flow

pytestmark = pytest.mark.anyio


@task
def numbers() -> list[int]:
    return [1, 2, 3]


@task
def nested() -> list[list[int]]:
    return [[1], [2, 3]]


@task
def scale(x: int, factor: int) -> int:
    return x * factor


@task
def total(values: list[int]) -> int:
    return sum(values)


def mapped_flow() -> Flow:
    with Flow("graph") as flow:
        factor = numbers()
        scaled = scale.map(x=numbers(), factor=unmapped(factor))
        total(scaled)
    return flow


def graphs(db: Path) -> list[tuple[str, int, Any]]:
    """Every flow version: (name, version, its graph decoded or None)."""
    with closing(sqlite3.connect(db)) as conn:
        fetched = conn.execute(
            "SELECT name, version, graph FROM flows ORDER BY name, version"
        ).fetchall()
    return [(n, v, None if g is None else json.loads(g)) for n, v, g in fetched]


@pytest.fixture
def shape_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count the engine's calls of `shape` (the flow name of each)."""
    calls: list[str] = []

    def counting(flow: Flow) -> str:
        calls.append(flow.name)
        return shape(flow)

    monkeypatch.setattr(durable.engine.flow_runner, "shape", counting)
    return calls


async def test_a_run_stores_the_graph_once_per_version(
    db: Path, shape_calls: list[str]
) -> None:
    flow = mapped_flow()
    await run_flow_async(flow, db=db)
    await run_flow_async(flow, db=db)
    assert shape_calls == ["graph"]  # the second run's version existed: not computed
    with flow:
        total(numbers())
    await run_flow_async(flow, db=db)
    assert shape_calls == ["graph", "graph"]
    stored = graphs(db)
    assert [(name, version) for name, version, _ in stored] == [
        ("graph", 1),
        ("graph", 2),
    ]
    assert stored[1][2] == json.loads(shape(flow))
    assert len(stored[1][2]["tasks"]) == len(stored[0][2]["tasks"]) + 2


async def test_registration_stores_the_graph_and_its_runs_reuse_it(
    db: Path, shape_calls: list[str]
) -> None:
    flow = mapped_flow()
    store = await Store.open(db)
    try:
        await store.register_flow(package_flow(flow, file=None, registered_at=1.0))
        await run_flow_async(flow, store=store)
    finally:
        await store.close()
    assert graphs(db) == [("graph", 1, json.loads(shape(flow)))]
    assert shape_calls == []  # the run's version was the registered one


async def test_a_version_stored_without_a_graph_gets_it_on_its_next_run(
    db: Path,
) -> None:
    flow = mapped_flow()
    await run_flow_async(flow, db=db)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE flows SET graph = NULL")
    await run_flow_async(flow, db=db)
    assert graphs(db) == [("graph", 1, json.loads(shape(flow)))]


def test_a_mapped_edge_its_keys_and_flags_round_trip() -> None:
    with Flow("shapes") as flow:
        factor = numbers()
        scaled = scale.map(x=numbers(), factor=unmapped(factor))
        total(scaled)
        total.map(values=flatten(nested()))
    graph = json.loads(shape(flow))
    assert graph["tasks"] == [
        ["numbers-1", "numbers", False],
        ["numbers-2", "numbers", False],
        ["scale-1", "scale", True],
        ["total-1", "total", False],
        ["nested-1", "nested", False],
        ["total-2", "total", True],
    ]
    assert graph["edges"] == [
        ["numbers-1", "scale-1", "factor", False, False],
        ["numbers-2", "scale-1", "x", True, False],
        ["scale-1", "total-1", "values", False, False],
        ["nested-1", "total-2", "values", True, True],
    ]


def test_an_edge_without_a_key_stores_null() -> None:
    with Flow("order") as flow:
        first = numbers()
        second = total(values=[0])
        second.set_upstream(first)
    graph = json.loads(shape(flow))
    assert ["numbers-1", "total-1", None, False, False] in graph["edges"]
