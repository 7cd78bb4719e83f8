"""The behaviour suite: every executor runs the same flows to the same states.

Retries, timeouts, mapping, signals, triggers, caching and checkpoints, restart after a
failure, context and logs inside the body: all of it is the runner's work in the flow's
process, so it must not depend on where the bodies run (`executor` is each kind in turn).
Bodies are closures, shipped by value with cloudpickle; they report through files.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable import Flow, Parameter, context, signals, task, triggers
from durable.executors import Executor
from durable.states import (
    Cached,
    Failed,
    Looped,
    Paused,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from tests.engine.helpers import history, rows, run
from tests.executors.helpers import Gate, Tally

pytestmark = pytest.mark.anyio


@pytest.fixture
def tally(tmp_path: Path) -> Tally:
    return Tally(tmp_path / "ran.txt")


async def test_results_pass_downstream(executor: Executor, db: Path) -> None:
    @task
    def add(x: int, y: int) -> int:
        return x + y

    @task
    async def double(x: int) -> int:
        return 2 * x

    with Flow("chain") as flow:
        total = double(add(1, add(2, 3)))
    state = await run(flow, db, executor=executor)
    assert state.is_successful()
    assert state.result[total].result == 12


async def test_the_body_reads_its_task_run_context(
    executor: Executor, db: Path
) -> None:
    @task
    def report(x: int) -> dict[str, Any]:
        keys = ("flow_run_id", "task_run_id", "task_name", "map_index", "attempt")
        return {key: context.get(key) for key in keys} | {
            "parameters": context.parameters,
            "x": x,
        }

    with Flow("context") as flow:
        seen = report.map(Parameter("xs", default=[5, 6]))
    state = await run(flow, db, run_id="ctx", executor=executor)
    children = dict(
        rows(
            db,
            "SELECT map_index, id FROM task_runs WHERE task_slug = 'report-1'"
            " AND map_index >= 0",
        )
    )
    values = state.result[seen].result
    assert [v["map_index"] for v in values] == [0, 1]
    for index, value in enumerate(values):
        assert value == {
            "flow_run_id": "ctx",
            "task_run_id": children[index],
            "task_name": "report",
            "map_index": index,
            "attempt": 1,
            "parameters": {"xs": [5, 6]},
            "x": 5 + index,
        }


async def test_failures_are_retried(executor: Executor, db: Path, tally: Tally) -> None:
    @task(max_retries=2, retry_delay=timedelta(0))
    def flaky() -> str:
        tally.record("flaky")
        if tally.count("flaky") < 3:
            raise ValueError("not yet")
        return "done"

    with Flow("retries") as flow:
        result = flaky()
    state = await run(flow, db, run_id="r", executor=executor)
    assert state.result[result].result == "done"
    assert tally.count("flaky") == 3
    assert history(db, "r", "flaky-1") == [
        "Running", "Failed", "Retrying", "Running", "Failed", "Retrying",
        "Running", "Success",
    ]  # fmt: skip


async def test_an_exception_fails_the_task_with_the_exception(
    executor: Executor, db: Path
) -> None:
    @task
    def broken() -> None:
        raise KeyError("missing")

    with Flow("error") as flow:
        failing = broken()
    state = await run(flow, db, executor=executor)
    failed = state.result[failing]
    assert isinstance(failed, Failed)
    assert isinstance(failed.result, KeyError)
    assert failed.result.args == ("missing",)


async def test_a_body_past_its_timeout_times_out(
    executor: Executor, db: Path, tmp_path: Path, tally: Tally
) -> None:
    gate = Gate(tmp_path / "gate")

    @task(timeout=0.3)
    def stuck() -> None:
        gate.wait()
        tally.record("stuck-finished")

    @task(trigger=triggers.always_run)
    def after() -> str:
        return "ran"

    with Flow("timeout") as flow:
        last = after(upstream_tasks=[stuck])
    try:
        state = await run(flow, db, run_id="t", executor=executor)
    finally:
        gate.open()  # a soft timeout leaves the body waiting: let it go
    assert isinstance(state.result[flow.get_tasks(name="stuck")[0]], TimedOut)
    assert state.result[last].result == "ran"


async def test_a_map_of_a_hundred_children(executor: Executor, db: Path) -> None:
    @task
    def square(x: int) -> int:
        return x * x

    @task
    def total(xs: list[int]) -> int:
        return sum(xs)

    with Flow("map") as flow:
        summed = total(square.map(list(range(100))))
    state = await run(flow, db, run_id="m", executor=executor)
    assert state.result[summed].result == sum(x * x for x in range(100))
    children = rows(
        db, "SELECT COUNT(*) FROM task_runs WHERE task_slug = 'square-1'"
        " AND map_index >= 0",
    )  # fmt: skip
    assert children == [(100,)]


@pytest.mark.parametrize(
    ("signal", "state_type"),
    [(signals.FAIL, Failed), (signals.SKIP, Skipped), (signals.PAUSE, Paused)],
)
async def test_signals_raised_in_the_body_choose_the_state(
    executor: Executor, db: Path, signal: type[signals.Signal], state_type: type[State]
) -> None:
    @task
    def chooser() -> None:
        raise signal("chosen in the body")

    with Flow("signals") as flow:
        chosen = chooser()
    state = await run(flow, db, executor=executor)
    result = state.result[chosen]
    assert type(result) is state_type
    assert result.message == "chosen in the body"
    if signal is signals.FAIL:
        assert isinstance(result.result, signals.FAIL)
        assert result.result.state is result


async def test_endrun_and_loop_cross_back(executor: Executor, db: Path) -> None:
    @task
    def ended() -> None:
        raise signals.ENDRUN(Success("ended early", result=7))

    @task
    def looping() -> int:
        count = context.get("task_loop_count")
        if count < 3:
            raise signals.LOOP(result=count)
        return int(context.get("task_loop_result")) * 10

    with Flow("endrun-loop") as flow:
        early = ended()
        looped = looping()
    state = await run(flow, db, run_id="e", executor=executor)
    assert state.result[early].message == "ended early"
    assert state.result[early].result == 7
    assert state.result[looped].result == 20
    assert history(db, "e", "looping-1").count(Looped.__name__) == 2


async def test_triggers_decide_after_a_failure(executor: Executor, db: Path) -> None:
    @task
    def broken() -> None:
        raise RuntimeError("boom")

    @task
    def needs_success() -> str:
        return "should not run"

    @task(trigger=triggers.always_run)
    def cleanup() -> str:
        return "cleaned"

    @task
    def independent() -> str:
        return "fine"

    with Flow("triggers") as flow:
        failing = broken()
        strict = needs_success(upstream_tasks=[failing])
        tidy = cleanup(upstream_tasks=[failing])
        other = independent()
    state = await run(flow, db, executor=executor)
    assert isinstance(state.result[strict], TriggerFailed)
    assert state.result[tidy].result == "cleaned"
    assert state.result[other].result == "fine"


async def test_results_are_checkpointed_and_cached(
    executor: Executor, db: Path, tally: Tally
) -> None:
    @task(cache_for=timedelta(hours=1))
    def expensive(x: int) -> int:
        tally.record("expensive")
        return x * 100

    with Flow("cached") as flow:
        value = expensive(4)
    first = await run(flow, db, run_id="c1", executor=executor)
    second = await run(flow, db, run_id="c2", executor=executor)
    assert first.result[value].result == 400
    assert isinstance(second.result[value], Cached)
    assert second.result[value].result == 400
    assert tally.count("expensive") == 1
    stored = rows(
        db, "SELECT COUNT(*) FROM results r JOIN task_runs t ON t.id = r.task_run_id"
        " WHERE t.flow_run_id = 'c1' AND t.task_slug = 'expensive-1'",
    )  # fmt: skip
    assert stored == [(1,)]


async def test_a_restart_runs_only_the_failed_part_again(
    executor: Executor, db: Path, tally: Tally, tmp_path: Path
) -> None:
    fixed = Gate(tmp_path / "fixed")

    @task
    def extract() -> list[int]:
        tally.record("extract")
        return [1, 2, 3]

    @task
    def transform(xs: list[int]) -> list[int]:
        tally.record("transform")
        if not fixed.wait(0):
            raise ValueError("bad data")
        return [x * 10 for x in xs]

    @task
    def load(xs: list[int]) -> int:
        tally.record("load")
        return sum(xs)

    with Flow("restart") as flow:
        loaded = load(transform(extract()))
    assert (await run(flow, db, run_id="r1", executor=executor)).is_failed()
    fixed.open()
    state = await run(flow, db, run_id="r1", restart=True, executor=executor)
    assert state.result[loaded].result == 60
    assert tally.labels() == ["extract", "transform", "transform", "load"]


async def test_body_logs_and_prints_reach_the_run_logs(
    executor: Executor, db: Path
) -> None:
    @task
    def chatty(x: int) -> int:
        logging.getLogger("durable.task.chatty").info("working on %d", x)
        return x

    @task(log_stdout=True)
    def printer() -> None:
        print("printed", context.task_name)

    with Flow("logs") as flow:
        chatty.map([1, 2])
        printer()
    await run(flow, db, run_id="l", executor=executor)
    logged = rows(
        db, "SELECT t.task_slug, t.map_index, l.message FROM logs l JOIN task_runs t"
        " ON t.id = l.task_run_id WHERE l.logger LIKE 'durable.task.%'"
        " ORDER BY t.task_slug, t.map_index",
    )  # fmt: skip
    assert logged == [
        ("chatty-1", 0, "working on 1"), ("chatty-1", 1, "working on 2"),
        ("printer-1", -1, "printed printer"),
    ]  # fmt: skip


async def test_an_interrupted_run_resumes_without_rerunning_finished_tasks(
    executor: Executor, db: Path, tally: Tally, tmp_path: Path
) -> None:
    gate = Gate(tmp_path / "gate")

    @task
    async def step(i: int, previous: int) -> int:
        import anyio.to_thread

        tally.record(f"step-{i}")
        if i == 2:  # held until the test lets it go, whatever process it is in
            await anyio.to_thread.run_sync(gate.wait, abandon_on_cancel=True)
        return previous + i

    with Flow("interrupted") as flow:
        last = step(3, step(2, step(1, 0)))
    async with anyio.create_task_group() as group:  # stopped as a crash would stop it
        group.start_soon(lambda: run(flow, db, run_id="i", executor=executor))
        await anyio.to_thread.run_sync(tally.wait_for, "step-2")
        group.cancel_scope.cancel()
    gate.open()
    state = await run(flow, db, run_id="i", executor=executor)
    assert state.result[last].result == 6
    assert sorted(tally.labels()) == ["step-1", "step-2", "step-2", "step-3"]
    attempts = dict(rows(db, "SELECT task_slug, attempts FROM task_runs"))
    assert attempts == {"step-1": 1, "step-2": 2, "step-3": 1}
