"""Mapping: children as task runs of their own, zips, flatten, reduce, maps of maps, resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from durable import Flow, flatten, signals, task, unmapped
from durable.states import Failed, Mapped, Skipped, Success, TriggerFailed
from durable.utilities.tasks import apply_map
from tests.engine.helpers import rows, run

pytestmark = pytest.mark.anyio


@task
def numbers(n: int) -> list[int]:
    return list(range(n))


@task
def total(xs: list[int]) -> int:
    return sum(xs)


class TestMap:
    async def test_each_child_is_a_task_run_with_its_map_index(self, db: Path) -> None:
        @task
        def add(x: int, y: int) -> int:
            return x + y

        with Flow("m") as flow:
            added = add.map(numbers(3), y=unmapped(10))
        state = await run(flow, db, run_id="r1")
        parent = state.result[added]
        assert isinstance(parent, Mapped)
        assert [child.result for child in parent.map_states] == [10, 11, 12]
        assert rows(
            db, "SELECT map_index, state FROM task_runs WHERE task_slug = 'add-1'"
            " ORDER BY map_index",
        ) == [(-1, "Mapped"), (0, "Success"), (1, "Success"), (2, "Success")]  # fmt: skip

    async def test_several_mapped_arguments_zip_to_the_shortest(self, db: Path) -> None:
        @task
        def pair(a: int, b: str) -> str:
            return f"{a}{b}"

        with Flow("m") as flow:
            paired = pair.map([1, 2, 3], ["a", "b"])
        state = await run(flow, db)
        assert state.result[paired].result == ["1a", "2b"]

    async def test_a_reduce_receives_the_list_of_child_results(self, db: Path) -> None:
        @task
        def square(x: int) -> int:
            return x * x

        with Flow("m") as flow:
            summed = total(square.map(numbers(4)))
        assert (await run(flow, db)).result[summed].result == 14

    async def test_an_empty_input_maps_to_no_children_and_succeeds(
        self, db: Path
    ) -> None:
        @task
        def square(x: int) -> int:
            return x * x

        with Flow("m") as flow:
            squares = square.map(numbers(0))
            summed = total(squares)
        state = await run(flow, db)
        assert state.is_successful()
        assert isinstance(state.result[squares], Mapped)
        assert state.result[summed].result == 0

    async def test_flatten_unnests_one_level(self, db: Path) -> None:
        @task
        def twice(x: int) -> list[int]:
            return [x, x]

        @task
        def plus_one(x: int) -> int:
            return x + 1

        with Flow("m") as flow:
            flat = plus_one.map(flatten(twice.map(numbers(2))))
        assert (await run(flow, db)).result[flat].result == [1, 1, 2, 2]

    async def test_a_map_of_a_map_runs_child_by_child(self, db: Path) -> None:
        calls: list[str] = []

        @task
        def first(x: int) -> int:
            calls.append(f"first {x}")
            return x

        @task
        def second(x: int) -> int:
            calls.append(f"second {x}")
            return x

        with Flow("m") as flow:
            second.map(first.map(numbers(3)))
        await run(flow, db)
        assert calls == ["first 0", "second 0", "first 1", "second 1", "first 2",
                         "second 2"]  # fmt: skip

    async def test_children_retry_and_fail_on_their_own(self, db: Path) -> None:
        attempts: dict[int, int] = {}

        @task(max_retries=1, retry_delay=0)
        def fragile(x: int) -> int:
            attempts[x] = attempts.get(x, 0) + 1
            if x == 1:
                raise ValueError("one is bad")
            return x

        with Flow("m") as flow:
            mapped = fragile.map(numbers(3))
            summed = total(mapped)
        state = await run(flow, db)
        assert attempts == {0: 1, 1: 2, 2: 1}
        children = state.result[mapped].map_states
        assert [type(c) for c in children] == [Success, Failed, Success]
        assert isinstance(state.result[summed], TriggerFailed)
        assert state.is_failed()

    async def test_mapping_over_something_without_items_fails_the_parent(
        self, db: Path
    ) -> None:
        @task
        def not_a_list() -> int:
            return 5

        @task
        def square(x: int) -> int:
            return x * x

        with Flow("m") as flow:
            squares = square.map(not_a_list())
        state = await run(flow, db)
        assert isinstance(state.result[squares], Failed)
        assert "Cannot map over" in (state.result[squares].message or "")

    async def test_a_skipped_input_skips_the_mapped_task(self, db: Path) -> None:
        @task
        def nothing() -> list[int]:
            raise signals.SKIP("no input today")

        @task
        def square(x: int) -> int:
            return x * x

        with Flow("m") as flow:
            squares = square.map(nothing())
        assert isinstance((await run(flow, db)).result[squares], Skipped)

    async def test_context_gives_each_child_its_map_index(self, db: Path) -> None:
        from durable import context

        @task
        def where(x: int) -> Any:
            return (x, context.map_index)

        with Flow("m") as flow:
            found = where.map([7, 8])
        assert (await run(flow, db)).result[found].result == [(7, 0), (8, 1)]


class TestApplyMap:
    async def test_a_whole_sub_graph_is_mapped_child_by_child(self, db: Path) -> None:
        @task
        def inc(x: int) -> int:
            return x + 1

        @task
        def double(x: int) -> int:
            return 2 * x

        def pipeline(x: Any) -> Any:
            return double(inc(x))

        with Flow("m") as flow:
            doubled = apply_map(pipeline, numbers(3))
        assert (await run(flow, db)).result[doubled].result == [2, 4, 6]


class TestResumeOfMaps:
    async def test_only_unfinished_children_run_on_resume(self, db: Path) -> None:
        calls: list[int] = []
        gate = anyio.Event()

        @task
        async def slow(x: int) -> int:
            calls.append(x)
            if x == 3:
                await gate.wait()
            return x * 10

        with Flow("m") as flow:
            mapped = slow.map(numbers(6))
            summed = total(mapped)

        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run(flow, db, run_id="r1"))
            with anyio.fail_after(10):
                while 3 not in calls:
                    await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
        assert calls == [0, 1, 2, 3]

        calls.clear()
        gate.set()
        state = await run(flow, db, run_id="r1")
        assert calls == [3, 4, 5]
        assert state.result[summed].result == 150
        assert rows(
            db, "SELECT COUNT(*) FROM states s JOIN task_runs t ON t.id = s.task_run_id"
            " WHERE t.task_slug = 'slow-1' AND t.map_index = -1 AND s.name = 'Mapped'",
        ) == [(1,)]  # fmt: skip


class TestConcurrentMaps:
    async def test_children_run_at_once_on_a_concurrent_executor(
        self, db: Path
    ) -> None:
        from durable import ConcurrentExecutor

        arrived = [anyio.Event(), anyio.Event()]

        @task
        async def meet(i: int) -> int:
            arrived[i].set()
            with anyio.fail_after(5):  # only passes if the other child runs meanwhile
                await arrived[1 - i].wait()
            return i

        with Flow("m") as flow:
            met = meet.map([0, 1])
            summed = total(met)
        state = await run(flow, db, executor=ConcurrentExecutor(2))
        assert state.result[met].result == [0, 1]
        assert state.result[summed].result == 1
