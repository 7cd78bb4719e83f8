"""FlowRunner: new runs, resume, fingerprints, parameters, final states, handlers, logs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable import ConcurrentExecutor, Flow, Parameter, context, signals, task
from durable.errors import FlowChangedError, ParameterError, SerializationError
from durable.states import Failed, State, Success
from tests.engine.helpers import history, rows, run

pytestmark = pytest.mark.anyio


def counting_chain(n: int, calls: list[str], gate: anyio.Event | None = None,
                   hold_at: int | None = None) -> Flow:  # fmt: skip
    """A chain of n tasks that record their calls; task `hold_at` waits for `gate`."""

    @task
    async def step(i: int, previous: int) -> int:
        calls.append(f"step-{i}")
        if i == hold_at and gate is not None:
            await gate.wait()
        return previous + i

    with Flow("chain") as flow:
        value: Any = 0
        for i in range(n):
            value = step(i, value)
    return flow


async def interrupt_at(flow: Flow, db: Path, gate: anyio.Event, calls: list[str],
                       at: str, run_id: str) -> None:  # fmt: skip
    """Start a run and cancel it (as a crash would stop it) once `at` is running."""
    async with anyio.create_task_group() as group:
        group.start_soon(lambda: run(flow, db, run_id=run_id))
        with anyio.fail_after(10):
            while at not in calls:
                await anyio.lowlevel.checkpoint()
        group.cancel_scope.cancel()


async def interrupted_chain(db: Path, n: int, hold_at: int) -> tuple[Flow, list[str]]:
    """A chain of n tasks whose run "r1" was stopped while step `hold_at` ran.

    The held step is released afterwards, so resuming runs through.
    """
    calls: list[str] = []
    gate = anyio.Event()
    flow = counting_chain(n, calls, gate, hold_at=hold_at)
    await interrupt_at(flow, db, gate, calls, f"step-{hold_at}", "r1")
    gate.set()
    return flow, calls


class TestResume:
    async def test_finished_tasks_are_not_rerun_on_resume(self, db: Path) -> None:
        flow, calls = await interrupted_chain(db, 6, hold_at=3)
        assert calls == ["step-0", "step-1", "step-2", "step-3"]

        calls.clear()
        state = await run(flow, db, run_id="r1")
        assert state.is_successful()
        assert calls == ["step-3", "step-4", "step-5"]
        last = flow.get_tasks(slug="step-6")[0]
        assert state.result[last].result == sum(range(6))

    async def test_interrupted_task_runs_again_with_its_attempt_counted(
        self, db: Path
    ) -> None:
        flow, _ = await interrupted_chain(db, 3, hold_at=1)
        await run(flow, db, run_id="r1")
        attempts = dict(rows(db, "SELECT task_slug, attempts FROM task_runs"))
        assert attempts == {"step-1": 1, "step-2": 2, "step-3": 1}
        assert history(db, "r1", "step-2") == ["Running", "Running", "Success"]

    async def test_results_of_finished_tasks_are_read_from_the_store(
        self, db: Path
    ) -> None:
        flow, _ = await interrupted_chain(db, 3, hold_at=2)
        state = await run(flow, db, run_id="r1")
        first = flow.get_tasks(slug="step-1")[0]
        assert state.result[first].result == 0  # loaded lazily from the results table
        assert state.result[flow.get_tasks(slug="step-3")[0]].result == 3

    async def test_resume_with_a_changed_flow_is_refused(self, db: Path) -> None:
        calls: list[str] = []
        await run(counting_chain(2, calls), db, run_id="r1")
        with pytest.raises(FlowChangedError) as caught:
            await run(counting_chain(3, calls), db, run_id="r1")
        assert (caught.value.run_id, caught.value.flow_name) == ("r1", "chain")
        assert "'r1'" in str(caught.value)
        assert "'chain'" in str(caught.value)

    async def test_allowed_flow_changes_keep_results_of_matching_slugs(
        self, db: Path
    ) -> None:
        calls: list[str] = []
        await run(counting_chain(2, calls), db, run_id="r1")
        calls.clear()
        state = await run(counting_chain(3, calls), db, run_id="r1",
                          allow_flow_changes=True)  # fmt: skip
        assert calls == ["step-2"]
        assert state.is_successful()

    async def test_resuming_a_finished_run_runs_nothing_and_records_nothing(
        self, db: Path
    ) -> None:
        calls: list[str] = []
        flow = counting_chain(2, calls)
        await run(flow, db, run_id="r1")
        before = rows(db, "SELECT COUNT(*) FROM states")
        calls.clear()
        state = await run(flow, db, run_id="r1")
        assert state.is_successful()
        assert calls == []
        assert rows(db, "SELECT COUNT(*) FROM states") == before

    async def test_unchecked_pointed_results_rerun_when_a_downstream_needs_them(
        self, db: Path
    ) -> None:
        calls: list[str] = []
        gate = anyio.Event()

        @task(checkpoint=False)
        def volatile() -> int:
            calls.append("volatile")
            return 7

        @task
        async def consumer(x: int) -> int:
            calls.append("consumer")
            await gate.wait()
            return x * 2

        with Flow("f") as flow:
            c = consumer(volatile())
        await interrupt_at(flow, db, gate, calls, "consumer", "r1")
        gate.set()
        state = await run(flow, db, run_id="r1")
        assert state.result[c].result == 14
        assert calls == ["volatile", "consumer", "volatile", "consumer"]


class TestParameters:
    @staticmethod
    def flow() -> tuple[Flow, Any]:
        @task
        def double(x: int) -> int:
            return 2 * x

        with Flow("params") as flow:
            result = double(Parameter("x", default=3))
        return flow, result

    async def test_default_and_override(self, db: Path) -> None:
        flow, result = self.flow()
        assert (await run(flow, db)).result[result].result == 6
        state = await run(flow, db, parameters={"x": 1})
        assert state.result[result].result == 2

    def test_flow_run_takes_parameters_like_prefect(self, db: Path) -> None:
        flow, result = self.flow()
        # The Prefect 1 idiom, word for word.
        state = flow.run(parameters=dict(x=1), db=db)  # noqa: C408
        assert state.result[result].result == 2
        assert flow.run(db=db).result[result].result == 6

    def test_unknown_parameters_are_refused_before_anything_is_recorded(
        self, db: Path
    ) -> None:
        flow, _ = self.flow()
        with pytest.raises(ParameterError, match="nope"):
            flow.run(parameters={"nope": 1}, db=db)
        assert not db.exists() or rows(db, "SELECT COUNT(*) FROM flow_runs") == [(0,)]

    def test_missing_required_parameters_are_refused(self, db: Path) -> None:
        @task
        def show(x: int) -> int:
            return x

        with Flow("required") as flow:
            show(Parameter("x"))
        with pytest.raises(ParameterError, match="x"):
            flow.run(db=db)

    def test_flow_run_resumes_with_the_parameters_the_run_started_with(
        self, db: Path
    ) -> None:
        flow, result = self.flow()
        flow.run(parameters={"x": 5}, run_id="r1", db=db)
        assert flow.run(run_id="r1", db=db).result[result].result == 10
        assert flow.run(x=5, run_id="r1", db=db).result[result].result == 10
        with pytest.raises(ParameterError, match="keeps them"):
            flow.run(x=6, run_id="r1", db=db)

    async def test_a_resumed_run_keeps_its_parameters(self, db: Path) -> None:
        flow, result = self.flow()
        await run(flow, db, run_id="r1", parameters={"x": 5})
        assert (await run(flow, db, run_id="r1")).result[result].result == 10
        with pytest.raises(ParameterError, match="keeps them"):
            await run(flow, db, run_id="r1", parameters={"x": 6})


class TestResults:
    async def test_an_unpicklable_result_fails_its_task_and_spares_the_others(
        self, db: Path
    ) -> None:
        @task
        def fine() -> int:
            return 1

        @task
        def lock() -> Any:
            return threading.Lock()

        with Flow("f") as flow:
            a, b = fine(), lock()
        state = await run(flow, db, run_id="r1")
        failed = state.result[b]
        assert isinstance(failed, Failed)
        assert isinstance(failed.result, SerializationError)
        assert failed.result.task_name == "lock"
        assert "lock" in (failed.message or "")
        assert state.result[a].result == 1
        stored = rows(
            db, "SELECT t.task_slug, t.state FROM task_runs t ORDER BY t.task_slug"
        )
        assert stored == [("fine-1", "Success"), ("lock-1", "Failed")]

    async def test_json_serializer_stores_readable_results(self, db: Path) -> None:
        @task(serializer="json")
        def data() -> dict[str, int]:
            return {"a": 1}

        with Flow("f") as flow:
            data()
        await run(flow, db)
        assert rows(db, "SELECT serializer, value FROM results") == [
            ("json", b'{"a": 1}')
        ]


class TestHistoryAndFinalState:
    async def test_every_transition_is_recorded_in_order_with_timestamps(
        self, db: Path
    ) -> None:
        calls: list[str] = []
        await run(counting_chain(2, calls), db, run_id="r1")
        recorded = rows(
            db, "SELECT task_run_id, name, timestamp FROM states ORDER BY id"
        )
        flow_states = [name for owner, name, _ in recorded if owner is None]
        assert flow_states == ["Pending", "Running", "Success"]
        assert history(db, "r1", "step-1") == ["Running", "Success"]
        stamps = [at for _, _, at in recorded]
        assert stamps == sorted(stamps)

    async def test_reference_tasks_decide_the_flow_state(self, db: Path) -> None:
        @task
        def bad() -> None:
            raise RuntimeError("bad")

        @task
        def good() -> int:
            return 1

        with Flow("f") as flow:
            bad()
            g = good()
        assert (await run(flow, db)).is_failed()
        flow.set_reference_tasks([g])
        assert (await run(flow, db)).is_successful()


class TestHandlers:
    async def test_a_task_handler_may_replace_the_new_state(self, db: Path) -> None:
        seen: list[tuple[str, str]] = []

        def forgive(task: Any, old: State, new: State) -> State | None:
            seen.append((old.name, new.name))
            return Success("forgiven", result=0) if new.is_failed() else None

        @task(state_handlers=[forgive])
        def bad() -> None:
            raise RuntimeError("bad")

        with Flow("f") as flow:
            b = bad()
        state = await run(flow, db, run_id="r1")
        assert state.result[b].message == "forgiven"
        assert state.is_successful()
        assert seen == [("Pending", "Running"), ("Running", "Failed")]
        assert history(db, "r1", "bad-1") == ["Running", "Success"]

    async def test_a_handler_that_raises_fails_the_transition_clearly(
        self, db: Path
    ) -> None:
        def broken(task: Any, old: State, new: State) -> None:
            raise KeyError("handler bug")

        @task(state_handlers=[broken])
        def fine() -> int:
            return 1

        with Flow("f") as flow:
            f = fine()
        state = await run(flow, db)
        assert isinstance(state.result[f], Failed)
        assert "broken" in (state.result[f].message or "")

    async def test_flow_handlers_see_each_flow_transition(self, db: Path) -> None:
        seen: list[str] = []

        def note(flow: Any, old: State, new: State) -> None:
            seen.append(new.name)

        with Flow("f", state_handlers=[note]) as flow:
            task(lambda: 1)()
        await run(flow, db)
        assert seen == ["Running", "Success"]

    async def test_on_failure_is_called_with_the_failed_state(self, db: Path) -> None:
        failures: list[str] = []

        @task(on_failure=lambda t, s: failures.append(s.name))
        def bad() -> None:
            raise signals.FAIL("nope")

        with Flow("f") as flow:
            bad()
        await run(flow, db)
        assert failures == ["Failed"]


class TestContextAndLogs:
    async def test_context_names_the_run_task_run_and_attempt(self, db: Path) -> None:
        @task
        def look() -> dict[str, Any]:
            return {k: context.get(k) for k in
                    ("flow_run_id", "task_run_id", "attempt", "flow_name", "task_slug")}  # fmt: skip

        with Flow("ctx") as flow:
            t = look()
        seen = (await run(flow, db, run_id="r1")).result[t].result
        [(task_run_id,)] = rows(db, "SELECT id FROM task_runs")
        assert seen == {"flow_run_id": "r1", "task_run_id": task_run_id, "attempt": 1,
                        "flow_name": "ctx", "task_slug": "look-1"}  # fmt: skip

    async def test_prints_and_task_logs_land_in_the_store_with_their_task_run(
        self, db: Path
    ) -> None:
        @task(log_stdout=True)
        def talk() -> None:
            print("printed line")
            context.logger.info("logged line")

        with Flow("f") as flow:
            talk()
        await run(flow, db, run_id="r1")
        [(task_run_id,)] = rows(db, "SELECT id FROM task_runs")
        logged = rows(
            db, "SELECT task_run_id, message FROM logs WHERE task_run_id IS NOT NULL"
        )
        assert (task_run_id, "printed line") in logged
        assert (task_run_id, "logged line") in logged


class TestExecutors:
    async def test_concurrent_executor_runs_independent_tasks_at_once(
        self, db: Path
    ) -> None:
        first, second = anyio.Event(), anyio.Event()

        @task
        async def meet(mine: anyio.Event, other: anyio.Event) -> str:
            mine.set()
            with anyio.fail_after(5):
                await other.wait()
            return "met"

        with Flow("f") as flow:
            a = meet(first, second)
            b = meet(second, first)
        state = await run(flow, db, executor=ConcurrentExecutor(2))
        assert state.result[a].result == state.result[b].result == "met"

    async def test_concurrent_executor_respects_dependencies(self, db: Path) -> None:
        order: list[int] = []

        @task
        def note(i: int, after: Any = None) -> int:
            order.append(i)
            return i

        with Flow("f") as flow:
            a = note(1)
            b = note(2, a)
            note(3, b)
        await run(flow, db, executor=ConcurrentExecutor(4))
        assert order == [1, 2, 3]
