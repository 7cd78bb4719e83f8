"""Restart: failed task runs and everything downstream run again; successes stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from durable import Flow, task, triggers
from durable.errors import RunNotFoundError
from durable.states import Failed, Success
from tests.engine.helpers import history, rows, run

pytestmark = pytest.mark.anyio


def fragile_chain(calls: list[str], broken: set[str]) -> tuple[Flow, Any]:
    """extract -> transform (fails while 'transform' is in `broken`) -> load, + cleanup."""

    @task
    def extract() -> int:
        calls.append("extract")
        return 1

    @task
    def transform(x: int) -> int:
        calls.append("transform")
        if "transform" in broken:
            raise RuntimeError("bad data")
        return x + 1

    @task
    def load(x: int) -> int:
        calls.append("load")
        return x * 10

    @task(trigger=triggers.always_run)
    def cleanup() -> str:
        calls.append("cleanup")
        return "clean"

    with Flow("etl") as flow:
        loaded = load(transform(extract()))
        cleanup(upstream_tasks=[loaded])
    flow.set_reference_tasks([loaded])
    return flow, loaded


async def test_failed_tasks_and_their_downstream_run_again(db: Path) -> None:
    calls: list[str] = []
    broken = {"transform"}
    flow, loaded = fragile_chain(calls, broken)
    assert (await run(flow, db, run_id="r1")).is_failed()
    assert calls == ["extract", "transform", "cleanup"]

    calls.clear()
    broken.clear()  # the data got fixed
    state = await run(flow, db, run_id="r1", restart=True)
    assert state.is_successful()
    assert state.result[loaded].result == 20
    assert calls == ["transform", "load", "cleanup"]  # extract's success was reused
    assert history(db, "r1", "transform-1") == [
        "Running", "Failed", "Pending", "Running", "Success",
    ]  # fmt: skip
    assert history(db, "r1", "load-1")[:2] == ["TriggerFailed", "Pending"]


async def test_a_restart_from_a_task_reruns_it_and_its_downstream_only(
    db: Path,
) -> None:
    calls: list[str] = []
    flow, _ = fragile_chain(calls, set())
    assert (await run(flow, db, run_id="r1")).is_successful()
    calls.clear()

    state = await run(flow, db, run_id="r1", restart=["transform-1"])

    assert state.is_successful()
    assert calls == ["transform", "load", "cleanup"]  # extract's success was reused
    assert history(db, "r1", "load-1") == [
        "Running", "Success", "Pending", "Running", "Success",
    ]  # fmt: skip


async def test_a_resume_without_restart_leaves_failures_alone(db: Path) -> None:
    calls: list[str] = []
    flow, _ = fragile_chain(calls, {"transform"})
    await run(flow, db, run_id="r1")
    calls.clear()
    assert (await run(flow, db, run_id="r1")).is_failed()
    assert calls == []


async def test_only_the_failed_children_of_a_map_run_again(db: Path) -> None:
    calls: list[int] = []
    broken = {2}

    @task
    def square(x: int) -> int:
        calls.append(x)
        if x in broken:
            raise ValueError(f"{x} is broken")
        return x * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("map") as flow:
        summed = total(square.map([1, 2, 3]))
    await run(flow, db, run_id="r1")
    calls.clear()
    broken.clear()
    state = await run(flow, db, run_id="r1", restart=True)
    assert calls == [2]
    assert state.result[summed].result == 14
    assert isinstance(state.result[summed], Success)


async def test_restarting_an_unknown_run_says_so(db: Path) -> None:
    flow, _ = fragile_chain([], set())
    with pytest.raises(RunNotFoundError, match="nothing to restart"):
        await run(flow, db, run_id="nope", restart=True)
    assert rows(db, "SELECT COUNT(*) FROM flow_runs") == [(0,)]


def test_flow_run_restart_from_python(db: Path) -> None:
    calls: list[str] = []
    broken = {"transform"}
    flow, loaded = fragile_chain(calls, broken)
    assert isinstance(flow.run(run_id="r1", db=db).result[loaded], Failed)
    broken.clear()
    assert flow.run(run_id="r1", db=db, restart=True).result[loaded].result == 20


async def test_restart_reruns_every_failed_branch_and_the_failed_children(
    db: Path,
) -> None:
    calls: list[str] = []
    broken = {"left", "right", "item-1"}

    @task
    def source() -> list[int]:
        calls.append("source")
        return [0, 1, 2]

    @task
    def branch(name: str, xs: list[int]) -> int:
        calls.append(name)
        if name in broken:
            raise RuntimeError(f"{name} broke")
        return len(xs)

    @task
    def item(x: int) -> int:
        calls.append(f"item-{x}")
        if f"item-{x}" in broken:
            raise RuntimeError("item broke")
        return x

    @task
    def fine(xs: list[int]) -> int:
        calls.append("fine")
        return sum(xs)

    @task
    def combine(a: int, b: int, c: list[int], d: int) -> int:
        calls.append("combine")
        return a + b + sum(c) + d

    with Flow("branches") as flow:
        xs = source()
        result = combine(
            branch("left", xs), branch("right", xs), item.map(xs), fine(xs)
        )
    assert (await run(flow, db, run_id="r1")).is_failed()
    calls.clear()
    broken.clear()
    state = await run(flow, db, run_id="r1", restart=True)
    assert state.result[result].result == 3 + 3 + 3 + 3
    assert sorted(calls) == ["combine", "item-1", "left", "right"]
