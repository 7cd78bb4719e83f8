"""ProcessExecutor: crash isolation, hard timeouts, what crosses the process boundary."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import anyio
import psutil
import pytest

from durable import Flow, task, triggers
from durable.executors import (
    ProcessExecutor,
    RemoteException,
    TransferError,
    WorkerCrashedError,
)
from durable.states import Failed, Success, TimedOut
from tests.engine.helpers import rows, run
from tests.executors.helpers import Gate, Tally, is_running

pytestmark = pytest.mark.anyio


def worker_processes() -> list[psutil.Process]:
    """This test process's ProcessExecutor workers that are still alive."""
    return [
        child
        for child in psutil.Process().children(recursive=True)
        if "durable.executors.child" in " ".join(child.cmdline())
        and child.status() != psutil.STATUS_ZOMBIE
    ]


class TestCrashedWorker:
    async def test_a_segfault_fails_that_task_and_the_flow_goes_on(
        self, db: Path, tmp_path: Path
    ) -> None:
        tally = Tally(tmp_path / "ran.txt")

        @task
        def segfault() -> None:
            import ctypes

            tally.record("segfault")
            ctypes.string_at(0)  # reads address 0: SIGSEGV

        @task(trigger=triggers.always_run)
        def cleanup() -> str:
            tally.record("cleanup")
            return "cleaned"

        @task
        def step(x: int) -> int:
            tally.record("step")
            return x + 1

        with Flow("segfault") as flow:
            crashed = segfault()
            tidy = cleanup(upstream_tasks=[crashed])
            branch = step(step(step(0)))
        state = await run(flow, db, executor=ProcessExecutor(max_workers=2))

        failed = state.result[crashed]
        assert isinstance(failed, Failed)
        assert isinstance(failed.result, WorkerCrashedError)
        assert "SIGSEGV" in failed.result.detail
        assert "'segfault'" in (failed.message or "")
        assert "SIGSEGV (signal 11)" in (failed.message or "")
        assert state.result[tidy].result == "cleaned"
        assert state.result[branch].result == 3
        assert isinstance(state.result[branch], Success)
        assert sorted(tally.labels()) == ["cleanup", "segfault", "step", "step", "step"]

    async def test_an_exit_code_is_named(self, db: Path) -> None:
        @task
        def bail() -> None:
            import os

            os._exit(3)

        with Flow("exit") as flow:
            bailed = bail()
        state = await run(flow, db, executor=ProcessExecutor(max_workers=1))
        assert isinstance(state.result[bailed].result, WorkerCrashedError)
        assert "exited with code 3" in (state.result[bailed].message or "")

    async def test_a_crashed_worker_is_replaced_for_the_next_task(
        self, db: Path, tmp_path: Path
    ) -> None:
        tally = Tally(tmp_path / "ran.txt")

        @task
        def die() -> None:
            import os

            tally.record("die")
            os._exit(1)

        @task(trigger=triggers.always_run)
        def then(x: object) -> str:
            tally.record("then")
            return "ok"

        with Flow("replace") as flow:
            last = then(die())
        state = await run(flow, db, executor=ProcessExecutor(max_workers=1))
        assert state.result[last].result == "ok"
        assert tally.pids("die").isdisjoint(tally.pids("then"))


class TestHardTimeout:
    async def test_a_timed_out_body_has_its_process_killed(
        self, db: Path, tmp_path: Path
    ) -> None:
        tally, gate = Tally(tmp_path / "ran.txt"), Gate(tmp_path / "never")

        @task(timeout=1.0)  # counts a new worker's start too: leave it time to start
        def stuck() -> None:
            tally.record("stuck")
            gate.wait(30)
            tally.record("stuck-finished")

        with Flow("hard-timeout") as flow:
            stuck_run = stuck()
        state = await run(flow, db, executor=ProcessExecutor(max_workers=1))
        assert isinstance(state.result[stuck_run], TimedOut)
        (pid,) = tally.pids("stuck")
        assert not is_running(pid)
        assert tally.labels() == ["stuck"]


class TestLifecycle:
    async def test_no_worker_outlives_its_run(self, db: Path) -> None:
        @task
        def one(x: int) -> int:
            return x

        with Flow("lifecycle") as flow:
            one.map(list(range(6)))
        await run(flow, db, executor=ProcessExecutor(max_workers=2))
        assert worker_processes() == []

    async def test_workers_are_reused_within_a_run(
        self, db: Path, tmp_path: Path
    ) -> None:
        tally = Tally(tmp_path / "ran.txt")

        @task
        def where(x: int) -> int:
            tally.record("where")
            return x

        with Flow("reuse") as flow:
            where.map(list(range(8)))
        await run(flow, db, executor=ProcessExecutor(max_workers=2))
        assert len(tally.lines()) == 8
        assert len(tally.pids()) <= 2

    def test_a_call_outside_a_run_says_how_to_run(self) -> None:
        executor = ProcessExecutor(1)
        call = executor.call(len, {}, is_async=False, abandonable=False)
        with pytest.raises(RuntimeError, match="outside its start"):
            anyio.run(lambda: call)


class TestTransfer:
    async def test_an_input_that_cannot_be_pickled_fails_the_task(
        self, db: Path
    ) -> None:
        @task
        def make_lock() -> object:
            return "unused"

        @task
        def use(lock: object) -> None:
            pass

        with Flow("unpicklable-input") as flow:
            used = use(lock=threading.Lock())
        state = await run(flow, db, executor=ProcessExecutor(max_workers=1))
        error = state.result[used].result
        assert isinstance(error, TransferError)
        assert error.what == "input 'lock' (a lock)"

    async def test_a_result_that_cannot_be_pickled_fails_the_task(
        self, db: Path
    ) -> None:
        @task
        def make_lock() -> object:
            import threading

            return threading.Lock()

        with Flow("unpicklable-result") as flow:
            made = make_lock()
        state = await run(flow, db, executor=ProcessExecutor(max_workers=1))
        error = state.result[made].result
        assert isinstance(error, TransferError)
        assert error.what == "result (lock)"
        assert "'make_lock'" in str(error)

    async def test_an_exception_that_cannot_be_pickled_crosses_as_a_stand_in(
        self, db: Path
    ) -> None:
        @task
        def raise_odd() -> None:
            import threading

            class Odd(Exception):  # noqa: N818 (a user's exception)
                def __init__(self) -> None:
                    super().__init__("odd failure")
                    self.lock = threading.Lock()

            raise Odd()

        with Flow("odd") as flow:
            raised = raise_odd()
        state = await run(flow, db, executor=ProcessExecutor(max_workers=1))
        stand_in = state.result[raised].result
        assert isinstance(stand_in, RemoteException)
        assert stand_in.type_name.endswith("raise_odd.<locals>.Odd")
        assert stand_in.message == "odd failure"
        assert "raise Odd()" in stand_in.traceback_text

    async def test_records_logged_by_a_body_thread_cross_back(self, db: Path) -> None:
        @task
        def threaded() -> None:
            import logging
            import threading

            def work() -> None:
                logging.getLogger("durable.task.threaded").warning("from a thread")

            worker = threading.Thread(target=work)
            worker.start()
            worker.join()

        with Flow("threads") as flow:
            threaded()
        await run(flow, db, run_id="t", executor=ProcessExecutor(max_workers=1))
        assert rows(
            db, "SELECT level, message FROM logs WHERE logger = 'durable.task.threaded'"
        ) == [(logging.WARNING, "from a thread")]
