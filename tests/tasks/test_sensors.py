"""FileSensor and wait_for on a fake clock: polls pause on the run's time source."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pendulum
import pytest

from durable import Flow, task
from durable.engine.flow_runner import run_flow_async
from durable.errors import ConfigurationError
from durable.states import State
from durable.tasks.sensors import FileSensor, WaitTimeoutError, sensor_handler, wait_for
from durable.timesource import FakeTime
from tests.engine.helpers import history, rows

START = pendulum.datetime(2024, 1, 1, tz="UTC")


async def drive(
    flow: Flow,
    db: Path,
    clock: FakeTime,
    on_tick: Callable[[], None] = lambda: None,
    stop_after: timedelta | None = None,
    **options: Any,
) -> State | None:
    """Run `flow`, jumping the clock to each wake-up; `on_tick` runs before each jump.

    With `stop_after`, the run is cancelled (as a crash would cut it short) once the
    clock has moved that far; returns None then.
    """
    outcome: list[State] = []
    began = clock.now()

    async def run() -> None:
        outcome.append(await run_flow_async(flow, db=db, time=clock, **options))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        while not outcome:
            await anyio.lowlevel.checkpoint()
            await anyio.to_thread.run_sync(lambda: None)
            if clock.sleepers:
                if stop_after is not None and clock.now() - began >= stop_after:
                    group.cancel_scope.cancel()
                    return None
                on_tick()
                clock.advance(min(w for w, _ in clock._sleepers) - clock.now())
    return outcome[0]


def sensor_flow(path: Path, **options: Any) -> tuple[Flow, FileSensor]:
    with Flow("sensing") as flow:
        found = FileSensor(path, **options)()
    return flow, found


@pytest.mark.anyio
async def test_file_sensor_succeeds_when_the_file_appears(tmp_path: Path) -> None:
    target, clock = tmp_path / "ready.csv", FakeTime(START)
    flow, found = sensor_flow(target, poke_interval=timedelta(seconds=5))

    def on_tick() -> None:
        if clock.now() - START >= timedelta(seconds=10):  # appears between 10 and 15 s
            target.touch()

    state = await drive(flow, tmp_path / "runs.db", clock, on_tick)
    assert state is not None
    assert state.is_successful()
    assert state.result[found].result == str(target)
    # polls at 0, 5, 10 and 15 s: the file appeared between the last two
    assert clock.now() - START == timedelta(seconds=15)
    run_id = rows(tmp_path / "runs.db", "SELECT id FROM flow_runs")[0][0]
    assert history(tmp_path / "runs.db", run_id, flow.slugs[found]) == [
        *["Running", "Paused"] * 3, "Running", "Success",
    ]  # fmt: skip


@pytest.mark.anyio
async def test_file_sensor_fails_after_its_timeout(tmp_path: Path) -> None:
    clock = FakeTime(START)
    flow, found = sensor_flow(
        tmp_path / "never", poke_interval=timedelta(seconds=4), timeout=10
    )
    state = await drive(flow, tmp_path / "runs.db", clock)
    assert state is not None
    assert state.is_failed()
    failed = state.result[found]
    assert isinstance(failed.result, WaitTimeoutError)
    assert "Timed out after 0:00:10" in failed.message
    # polls at 0, 4, 8 and the deadline, 10 s after the first poll
    assert clock.now() - START == timedelta(seconds=10)


@pytest.mark.anyio
async def test_a_resumed_sensor_keeps_its_deadline(tmp_path: Path) -> None:
    db, clock = tmp_path / "runs.db", FakeTime(START)
    flow, found = sensor_flow(
        tmp_path / "never", poke_interval=timedelta(seconds=5), timeout=60
    )
    assert await drive(flow, db, clock, stop_after=timedelta(seconds=40)) is None
    run_id = rows(db, "SELECT id FROM flow_runs")[0][0]
    assert history(db, run_id, flow.slugs[found])[-1] == "Paused"

    clock.advance(timedelta(seconds=3))  # the process was down for a while
    state = await drive(flow, db, clock, run_id=run_id)
    assert state is not None
    assert state.is_failed()
    assert isinstance(state.result[found].result, WaitTimeoutError)
    # 60 s from the very first poll, not 60 s from the resume
    assert clock.now() - START == timedelta(seconds=60)


@pytest.mark.anyio
async def test_wait_for_in_a_task_body(tmp_path: Path) -> None:
    clock, polls = FakeTime(START), []

    @task(state_handlers=[sensor_handler])
    def wait_for_third_poll() -> int:
        polls.append(clock.now())
        return wait_for(
            lambda: len(polls) >= 3 and 42,
            poke_interval=timedelta(seconds=2),
            message="Waiting for the third poll.",
        )

    with Flow("waiting") as flow:
        answer = wait_for_third_poll()
    state = await drive(flow, tmp_path / "runs.db", clock)
    assert state is not None
    assert state.is_successful()
    assert state.result[answer].result == 42
    assert [p - START for p in polls] == [timedelta(seconds=s) for s in (0, 2, 4)]


@pytest.mark.anyio
async def test_wait_for_needs_the_handler(tmp_path: Path) -> None:
    @task
    def waits() -> None:
        wait_for(lambda: False)

    with Flow("unhandled") as flow:
        waits()
    state = await drive(flow, tmp_path / "runs.db", FakeTime(START))
    assert state is not None
    assert state.is_failed()
    assert isinstance(state.result[flow.get_tasks()[0]].result, ConfigurationError)


def test_outside_a_flow_run_the_sensor_checks_once(tmp_path: Path) -> None:
    (tmp_path / "here").touch()
    assert FileSensor(tmp_path / "here").run() == str(tmp_path / "here")
    with pytest.raises(WaitTimeoutError, match="checks only once"):
        FileSensor().run(tmp_path / "missing")
