"""TaskRunner steps, one class each: upstream checks, triggers, body, signals, retries."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
import pytest

from durable import Flow, Parameter, signals, task, triggers
from durable.states import Failed, Skipped, State, Success, TimedOut, TriggerFailed
from durable.timesource import FakeTime
from tests.engine.helpers import history, rows, run, run_on_fake_time

pytestmark = pytest.mark.anyio


@task
def one() -> int:
    return 1


@task
def boom() -> int:
    raise ValueError("boom")


@task
def add(x: int, y: int = 10) -> int:
    return x + y


class TestCheckUpstreamSkipped:
    async def test_skip_propagates_downstream(self, db: Path) -> None:
        @task
        def skipper() -> None:
            raise signals.SKIP("not today")

        with Flow("f") as flow:
            a = skipper()
            b = add(a)
        state = await run(flow, db)
        assert isinstance(state.result[b], Skipped)
        assert state.is_successful()

    async def test_a_task_may_opt_out_of_skipping(self, db: Path) -> None:
        @task
        def skipper() -> None:
            raise signals.SKIP()

        @task(skip_on_upstream_skip=False)
        def after(x: Any) -> str:
            return f"ran with {x!r}"

        with Flow("f") as flow:
            b = after(skipper())
        state = await run(flow, db)
        assert state.result[b].result == "ran with None"


class TestCheckTrigger:
    async def test_default_trigger_fails_when_an_upstream_failed(
        self, db: Path
    ) -> None:
        with Flow("f") as flow:
            b = add(boom())
        state = await run(flow, db)
        assert isinstance(state.result[b], TriggerFailed)
        assert state.is_failed()

    async def test_always_run_runs_after_a_failure(self, db: Path) -> None:
        @task(trigger=triggers.always_run)
        def cleanup() -> str:
            return "cleaned"

        with Flow("f") as flow:
            c = cleanup(upstream_tasks=[boom()])
        state = await run(flow, db)
        assert state.result[c].result == "cleaned"

    async def test_all_failed_trigger(self, db: Path) -> None:
        @task(trigger=triggers.all_failed)
        def on_failure_only() -> str:
            return "handled"

        with Flow("f") as flow:
            h = on_failure_only(upstream_tasks=[one()])
        state = await run(flow, db)
        assert isinstance(state.result[h], TriggerFailed)


class TestRunBody:
    async def test_arguments_bind_like_a_function_call(self, db: Path) -> None:
        with Flow("f") as flow:
            a = add(one(), y=5)
            b = add(2)
        state = await run(flow, db)
        assert state.result[a].result == 6
        assert state.result[b].result == 12

    async def test_async_bodies_run(self, db: Path) -> None:
        @task
        async def later(x: int) -> int:
            return x * 2

        with Flow("f") as flow:
            b = later(one())
        state = await run(flow, db)
        assert state.result[b].result == 2

    async def test_an_exception_fails_the_task_with_the_exception(
        self, db: Path
    ) -> None:
        with Flow("f") as flow:
            b = boom()
        state = await run(flow, db)
        failed = state.result[b]
        assert isinstance(failed, Failed)
        assert isinstance(failed.result, ValueError)
        assert "boom" in (failed.message or "")

    async def test_system_exit_in_a_task_is_a_failure_not_a_success(
        self, db: Path
    ) -> None:
        @task
        def leave() -> None:
            raise SystemExit(0)

        with Flow("f") as flow:
            b = leave()
        state = await run(flow, db)
        assert isinstance(state.result[b], Failed)

    @pytest.mark.parametrize(
        ("signal", "expected"),
        [
            (signals.FAIL("no"), Failed),
            (signals.SKIP("later"), Skipped),
            (signals.SUCCESS("fine", result=5), Success),
        ],
    )
    async def test_signals_choose_the_state(
        self, db: Path, signal: signals.Signal, expected: type[State]
    ) -> None:
        @task
        def signaller() -> None:
            raise signal

        with Flow("f") as flow:
            b = signaller()
        state = await run(flow, db)
        assert type(state.result[b]) is expected

    async def test_endrun_sets_exactly_the_state_given_without_retry(
        self, db: Path
    ) -> None:
        @task(max_retries=3, retry_delay=0)
        def ender() -> None:
            raise signals.ENDRUN(Failed("stop here"))

        with Flow("f") as flow:
            b = ender()
        state = await run(flow, db)
        assert state.result[b].message == "stop here"
        assert history(db, flow_run(db), "ender-1") == ["Running", "Failed"]

    async def test_a_timeout_stops_waiting_for_the_body(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        release = threading.Event()

        @task(timeout=5)
        def stuck() -> None:
            release.wait(10)

        with Flow("f") as flow:
            b = stuck()
        state = await run_on_fake_time(flow, db, fake_time)
        release.set()
        assert isinstance(state.result[b], TimedOut)


class TestCheckForRetry:
    async def test_a_failing_task_is_retried_after_its_delay(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []

        @task(max_retries=2, retry_delay=timedelta(minutes=5))
        def flaky() -> str:
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("not yet")
            return "ok"

        with Flow("f") as flow:
            b = flaky()
        state = await run_on_fake_time(flow, db, fake_time)
        assert state.result[b].result == "ok"
        assert history(db, flow_run(db), "flaky-1") == [
            "Running", "Failed", "Retrying", "Running", "Failed", "Retrying", "Running",
            "Success",
        ]  # fmt: skip
        start = pendulum.datetime(2026, 1, 1, tz="UTC").timestamp()
        retrying = rows(db, "SELECT details FROM states WHERE name = 'Retrying'")
        wake_times = [json.loads(details)["start_time"] for (details,) in retrying]
        assert wake_times == [start + 300, start + 600]

    async def test_retries_stop_after_max_retries(self, db: Path) -> None:
        @task(max_retries=1, retry_delay=0)
        def always_fails() -> None:
            raise RuntimeError("never")

        with Flow("f") as flow:
            b = always_fails()
        state = await run(flow, db)
        assert isinstance(state.result[b], Failed)
        [(attempts,)] = rows(
            db, "SELECT attempts FROM task_runs WHERE task_slug = 'always_fails-1'"
        )
        assert attempts == 2

    async def test_retry_on_limits_which_errors_retry(self, db: Path) -> None:
        @task(max_retries=3, retry_delay=0, retry_on=KeyError)
        def wrong_error() -> None:
            raise ValueError("not retried")

        with Flow("f") as flow:
            wrong_error()
        await run(flow, db)
        [(attempts,)] = rows(db, "SELECT attempts FROM task_runs")
        assert attempts == 1

    async def test_retry_signal_retries_past_max_retries(self, db: Path) -> None:
        calls: list[int] = []

        @task
        def again() -> int:
            calls.append(1)
            if len(calls) == 1:
                raise signals.RETRY("once more")
            return len(calls)

        with Flow("f") as flow:
            b = again()
        state = await run(flow, db)
        assert state.result[b].result == 2
        assert history(db, flow_run(db), "again-1")[:3] == [
            "Running",
            "Retrying",
            "Running",
        ]


def flow_run(db: Path) -> str:
    [(run_id,)] = rows(db, "SELECT id FROM flow_runs")
    return str(run_id)


class TestSetTaskRunName:
    async def test_each_task_run_is_named_from_its_inputs(self, db: Path) -> None:
        @task(task_run_name="square {x}")
        def square(x: int) -> int:
            return x * x

        with Flow("f") as flow:
            square.map([2, 3])
        await run(flow, db)
        names = rows(
            db, "SELECT map_index, run_name FROM task_runs WHERE task_slug = 'square-1'"
            " ORDER BY map_index",
        )  # fmt: skip
        assert names == [(-1, None), (0, "square 2"), (1, "square 3")]

    async def test_a_callable_name_gets_parameters_and_context(self, db: Path) -> None:
        @task(task_run_name=lambda **k: f"{k['flow_name']}:{k['day']}")
        def daily(day: str) -> str:
            return day

        with Flow("f") as flow:
            daily(Parameter("day", default="mon"))
        await run(flow, db)
        assert rows(
            db, "SELECT run_name FROM task_runs WHERE task_slug = 'daily-1'"
        ) == [("f:mon",)]

    async def test_a_template_that_cannot_be_filled_fails_the_task(
        self, db: Path
    ) -> None:
        @task(task_run_name="{missing}")
        def named() -> int:
            return 1

        with Flow("f") as flow:
            n = named()
        state = await run(flow, db)
        assert isinstance(state.result[n], Failed)
        assert "task_run_name" in (state.result[n].message or "")
