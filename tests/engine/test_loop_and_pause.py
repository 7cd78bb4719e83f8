"""LOOP (each iteration checkpointed, resumable) and PAUSE (stop, approve, continue)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from durable import Flow, context, signals, task, triggers
from durable.states import Paused, Success
from durable.store import Store, Transition
from durable.timesource import FakeTime
from durable.utilities.tasks import pause_task
from tests.engine.helpers import history, rows, run, run_on_fake_time

pytestmark = pytest.mark.anyio


async def approve(db: Path, run_id: str, slug: str) -> None:
    """What `durable approve` writes: a Resume state for the paused task run."""
    store = await Store.open(db)
    [task_run] = [t for t in await store.list_task_runs(run_id) if t.task_slug == slug]
    store.record_task_state(run_id, task_run.id, Transition("Resume", "ok", 0.0, None, False),
                            attempts=task_run.attempts)  # fmt: skip
    await store.close()


class TestLoop:
    async def test_a_looping_task_sees_the_last_result_and_count(
        self, db: Path
    ) -> None:
        seen: list[tuple[int, Any]] = []

        @task
        def count_to(n: int) -> int:
            loop_count, previous = context.task_loop_count, context.task_loop_result
            seen.append((loop_count, previous))
            total: int = (previous or 0) + loop_count
            if loop_count < n:
                raise signals.LOOP(result=total)
            return total

        with Flow("loop") as flow:
            counted = count_to(4)
        state = await run(flow, db, run_id="r1")
        assert state.result[counted].result == 10
        assert seen == [(1, None), (2, 1), (3, 3), (4, 6)]
        assert history(db, "r1", "count_to-1") == [
            "Running", "Looped", "Running", "Looped", "Running", "Looped", "Running",
            "Success",
        ]  # fmt: skip

    async def test_a_resumed_loop_continues_from_its_last_iteration(
        self, db: Path
    ) -> None:
        seen: list[int] = []
        gate = anyio.Event()

        @task
        async def looper() -> int:
            count: int = context.task_loop_count
            seen.append(count)
            if count == 3:
                await gate.wait()
            if count < 5:
                raise signals.LOOP(result=count * 10)
            return int(context.task_loop_result) + count

        with Flow("loop") as flow:
            looped = looper()
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run(flow, db, run_id="r1"))
            with anyio.fail_after(10):
                while 3 not in seen:
                    await anyio.lowlevel.checkpoint()
            group.cancel_scope.cancel()
        seen.clear()
        gate.set()
        state = await run(flow, db, run_id="r1")
        assert seen == [3, 4, 5]
        assert state.result[looped].result == 45


class TestPause:
    async def test_manual_only_pauses_the_task_and_the_flow_run(self, db: Path) -> None:
        calls: list[str] = []

        @task
        def before() -> int:
            calls.append("before")
            return 1

        @task(trigger=triggers.manual_only)
        def gated(x: int) -> int:
            calls.append("gated")
            return x + 1

        with Flow("pause") as flow:
            result = gated(before())
        state = await run(flow, db, run_id="r1")
        assert isinstance(state, Paused)
        assert isinstance(state.result[result], Paused)
        assert calls == ["before"]
        assert rows(db, "SELECT state FROM flow_runs") == [("Paused",)]

        assert isinstance(await run(flow, db, run_id="r1"), Paused)  # still waiting
        await approve(db, "r1", "gated-1")
        state = await run(flow, db, run_id="r1")
        assert state.is_successful()
        assert state.result[result].result == 2
        assert calls == ["before", "gated"]
        assert history(db, "r1", "gated-1") == [
            "Paused",
            "Resume",
            "Running",
            "Success",
        ]

    async def test_pause_task_stops_the_body_until_approved(self, db: Path) -> None:
        calls: list[bool] = []

        @task
        def careful() -> str:
            calls.append(bool(context.resume))
            pause_task("check the numbers first")
            return "done"

        with Flow("pause") as flow:
            careful()
        assert isinstance(await run(flow, db, run_id="r1"), Paused)
        await approve(db, "r1", "careful-1")
        assert (await run(flow, db, run_id="r1")).is_successful()
        assert calls == [False, True]

    async def test_a_timed_pause_continues_by_itself(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        @task
        def wait_an_hour() -> str:
            if not context.resume:
                raise signals.PAUSE("cooling down", start_time=fake_time.now()
                                    + timedelta(hours=1))  # fmt: skip
            return "cooled"

        with Flow("pause") as flow:
            cooled = wait_an_hour()
        start = fake_time.now()
        state = await run_on_fake_time(flow, db, fake_time)
        assert state.result[cooled].result == "cooled"
        assert isinstance(state.result[cooled], Success)
        assert fake_time.now() - start == timedelta(hours=1)


class TestLoopWithRetries:
    async def test_each_round_of_a_loop_has_its_own_retries(self, db: Path) -> None:
        failed_rounds: set[int] = set()

        @task(max_retries=1, retry_delay=0)
        def flaky_rounds() -> int:
            round_number: int = context.task_loop_count
            if round_number not in failed_rounds:  # every round fails once, then works
                failed_rounds.add(round_number)
                raise RuntimeError(f"round {round_number} hiccup")
            if round_number < 4:
                raise signals.LOOP(result=round_number)
            return round_number

        with Flow("loop") as flow:
            result = flaky_rounds()
        state = await run(flow, db)
        assert state.result[result].result == 4
        assert failed_rounds == {1, 2, 3, 4}
