"""Stage 4: the worker's loops (`burst`, `serve` and stopping) and its CLI options."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import anyio.to_thread
import pendulum
import pytest
from click.testing import CliRunner

from durable.cli import cli
from durable.store import Store
from durable.timesource import FakeTime
from tests.worker.conftest import WorkerFactory
from tests.worker.helpers import HoldingLauncher

pytestmark = pytest.mark.anyio


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the worker until `condition` holds (its store reads run on threads)."""
    with anyio.fail_after(5):
        while not condition():
            await anyio.to_thread.run_sync(lambda: None)


async def test_burst_runs_everything_due_and_returns(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(pendulum.duration(minutes=3))
    await make_worker(catchup="all", concurrency=1).burst()
    ticks = await store.list_scheduled_runs()
    assert [t.message for t in ticks] == ["Success"] * 3


async def test_serve_passes_on_the_clock_and_stops_when_asked(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    launcher = HoldingLauncher()
    worker = make_worker(launcher=launcher)
    async with anyio.create_task_group() as group:
        group.start_soon(worker.serve)
        await until(lambda: fake_time.sleepers == 1)  # asleep after its first pass
        fake_time.advance(pendulum.duration(minutes=1))
        await until(lambda: bool(launcher.handles) and fake_time.sleepers == 1)
        worker.stopping = True
        fake_time.advance(pendulum.duration(minutes=1))
        await until(lambda: fake_time.sleepers == 0)
        assert len(launcher.handles) == 1  # stopping: nothing more is claimed
        next(iter(launcher.handles.values())).end(0)
    assert worker.claims == {}


def test_the_worker_command_refuses_a_bad_catchup_policy(db: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db), "worker", "--catchup", "x"])
    assert result.exit_code == 2


def test_a_burst_with_nothing_registered_exits_0(db: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db), "worker", "--burst"])
    assert result.exit_code == 0, result.output


def test_worker_run_of_an_unknown_run_fails_in_one_line(db: Path) -> None:
    result = CliRunner().invoke(cli, ["--db", str(db), "worker-run", "nope"])
    assert result.exit_code == 2
    assert "No scheduled run 'nope'" in result.output
