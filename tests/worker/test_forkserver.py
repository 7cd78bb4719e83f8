"""The fork server launcher, with real processes: a run forked from the warm server runs
in a process of its own and its exit code comes back; SIGTERM reaches it; when the
server dies, the runs it forked are still seen to end (through /proc)."""

from __future__ import annotations

import os
import pickle
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from durable.engine.flow_runner import new_run_id
from durable.store import Store
from durable.store.records import NewScheduledRun, ScheduledRunRecord
from durable.timesource import SYSTEM_TIME
from durable.worker.forkserver import ForkServerLauncher
from tests.worker.processes import register_file


async def until(condition: Callable[[], bool], what: str, within: float = 20) -> None:
    """Poll `condition` every 20 ms without blocking the loop (the launcher reads)."""
    deadline = SYSTEM_TIME.now() + timedelta(seconds=within)
    while not condition():
        assert SYSTEM_TIME.now() < deadline, f"timed out: {what}"
        await SYSTEM_TIME.sleep_until(SYSTEM_TIME.now() + timedelta(seconds=0.02))


FLOW = """\
import time
from pathlib import Path

from durable import Flow, task

HERE = Path(__file__).parent


@task
def hold():
    (HERE / "started").touch()
    while not (HERE / "go").exists():  # the test lets the task finish
        time.sleep(0.02)
    return 1


with Flow("forked") as flow:
    hold()
"""


async def claimed_run(db: Path) -> ScheduledRunRecord:
    """A triggered run of `forked`, claimed as a worker claims it."""
    store = await Store.open(db)
    try:
        run_id, now = new_run_id(), SYSTEM_TIME.timestamp()
        await store.add_manual_run(
            NewScheduledRun(
                id=run_id, flow_name="forked", flow_version=1, scheduled_for=now,
                parameters_hash=f"manual:{run_id}", parameters=pickle.dumps({}),
                status="Scheduled", message=None, created_at=now,
            )
        )  # fmt: skip
        run = await store.claim_due_run(
            worker="test", token="T", now=now, lease_until=now + 60, pid=os.getpid(),
            pid_started="",
        )  # fmt: skip
        assert run is not None
        return run
    finally:
        await store.close()


async def flow_run_state(db: Path, run_id: str) -> str | None:
    store = await Store.open(db, readonly=True)
    try:
        record = await store.find_flow_run(run_id)
        return None if record is None else record.state
    finally:
        await store.close()


@pytest.fixture
def flow_db(tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "forked.py"
    path.write_text(FLOW)
    monkeypatch.setattr(sys, "path", list(sys.path))
    register_file(db, path, registered_at=SYSTEM_TIME.timestamp())
    return tmp_path


@pytest.mark.timeout(60)
async def test_a_forked_run_reports_its_exit_code(flow_db: Path, db: Path) -> None:
    run = await claimed_run(db)
    (flow_db / "go").touch()
    async with ForkServerLauncher(db) as launcher:
        handle = await launcher.launch(run)
        assert handle.pid != os.getpid()
        assert await handle.wait() == 0
        assert handle.returncode == 0
    assert await flow_run_state(db, run.id) == "Success"


@pytest.mark.timeout(60)
async def test_terminate_reaches_the_forked_run(flow_db: Path, db: Path) -> None:
    run = await claimed_run(db)
    async with ForkServerLauncher(db) as launcher:
        handle = await launcher.launch(run)
        await until((flow_db / "started").exists, "the task to start")
        handle.terminate()
        assert await handle.wait() == -signal.SIGTERM
    assert await flow_run_state(db, run.id) == "Running"  # cut short: it resumes


@pytest.mark.timeout(60)
async def test_runs_outlive_a_dead_server_and_are_seen_to_end(
    flow_db: Path, db: Path
) -> None:
    run = await claimed_run(db)
    async with ForkServerLauncher(db) as launcher:
        handle = await launcher.launch(run)
        await until((flow_db / "started").exists, "the task to start")
        server = launcher._process
        assert server is not None
        server.kill()
        await server.wait()
        await until(lambda: handle.orphaned, "the launcher to notice")
        assert handle.returncode is None  # the run goes on without its server
        (flow_db / "go").touch()
        assert await handle.wait() == -1  # its exit code went with the server
    assert await flow_run_state(db, run.id) == "Success"


@pytest.mark.timeout(60)
async def test_a_launcher_that_stops_does_not_report_its_server_as_dead(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with ForkServerLauncher(db):
        pass  # the worker exits: its launcher stops the server on purpose

    assert "fork server stopped" not in caplog.text
