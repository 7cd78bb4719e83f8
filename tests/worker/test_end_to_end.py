"""Stage 5, end to end with real processes: `durable worker --burst` creates the due run
of a registered flow and runs it in a child process (`durable worker-run`); a worker
stops cleanly on SIGTERM; after a kill -9 of worker and run, the run resumes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from durable.cli.loading import load_flow
from durable.store import Store
from durable.store.packaging import package_flow
from durable.timesource import SYSTEM_TIME

FLOW = """\
from datetime import timedelta
from pathlib import Path

import pendulum

from durable import Flow, task
from durable.schedules import IntervalSchedule


@task
def touch() -> int:
    with open(Path(__file__).with_name("ran.txt"), "a") as out:
        out.write("touch\\n")
    return 1


schedule = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(hours=1))
with Flow("hourly", schedule=schedule) as flow:
    touch()
"""


def register(db: Path, path: Path, hours_ago: float) -> None:
    """Register the file's flow as if `durable register` had run `hours_ago` hours ago."""
    flow = load_flow(str(path), None)
    at = SYSTEM_TIME.timestamp() - hours_ago * 3600

    async def save() -> None:
        store = await Store.open(db)
        try:
            await store.register_flow(package_flow(flow, file=path, registered_at=at))
        finally:
            await store.close()

    anyio.run(save)


async def scheduled(db: Path) -> list[tuple[str, str | None]]:
    store = await Store.open(db, readonly=True)
    try:
        runs = await store.list_scheduled_runs()
        states = [await store.find_flow_run(r.id) for r in runs]
    finally:
        await store.close()
    return [
        (r.status, s.state if s else None) for r, s in zip(runs, states, strict=True)
    ]


@pytest.mark.timeout(60)
def test_a_burst_worker_runs_the_due_run_in_a_subprocess(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "hourly.py"
    path.write_text(FLOW)
    monkeypatch.setattr(sys, "path", list(sys.path))
    register(db, path, hours_ago=3)

    done = subprocess.run(
        [sys.executable, "-m", "durable", "--db", str(db), "worker", "--burst"],
        check=False, capture_output=True, text=True, timeout=50, cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    found = anyio.run(scheduled, db)
    assert found[-1] == ("Finished", "Success")  # the newest missed tick ran
    assert {status for status, _ in found[:-1]} == {"Skipped"}
    assert len(found) in (3, 4)  # the ticks of the last 3 hours
    assert (tmp_path / "ran.txt").read_text() == "touch\n"


HELD = """\
import time
from datetime import timedelta
from pathlib import Path

import pendulum

from durable import Flow, task
from durable.schedules import IntervalSchedule

HERE = Path(__file__).parent


def note(line):
    with open(HERE / "ran.txt", "a") as out:
        out.write(line + "\\n")


@task
def first():
    note("first")
    return 1


@task
def held(x):
    note("held")
    while not (HERE / "go").exists():  # the test lets the task finish
        time.sleep(0.02)
    return x


schedule = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(hours=1))
with Flow("held", schedule=schedule) as flow:
    held(first())
"""


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    """Poll `condition` every 20 ms (a real process is being watched)."""
    deadline = SYSTEM_TIME.timestamp() + timeout
    while not condition():
        assert SYSTEM_TIME.timestamp() < deadline, "timed out"
        threading.Event().wait(0.02)


def committed_states(db: Path) -> dict[str, str]:
    """Each task's latest committed state, across every run in the database."""

    async def read() -> dict[str, str]:
        store = await Store.open(db, readonly=True)
        try:
            runs = await store.list_flow_runs()
            return {
                t.task_name: t.state
                for run in runs
                for t in await store.list_task_runs(run.id)
            }
        finally:
            await store.close()

    return anyio.run(read)


def ran(tmp_path: Path) -> list[str]:
    path = tmp_path / "ran.txt"
    return path.read_text().split() if path.exists() else []


def start_worker(db: Path, tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    with (tmp_path / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "durable", "--db", str(db), "worker", "--poll",
             "0.1", *args],
            stdout=log, stderr=log, cwd=tmp_path, start_new_session=True,
        )  # fmt: skip


@pytest.mark.timeout(60)
def test_sigterm_stops_claiming_and_waits_for_the_running_run(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "held.py"
    path.write_text(HELD)
    monkeypatch.setattr(sys, "path", list(sys.path))
    register(db, path, hours_ago=2)
    worker = start_worker(db, tmp_path)
    try:
        wait_for(lambda: ran(tmp_path) == ["first", "held"])
        worker.send_signal(signal.SIGTERM)
        (tmp_path / "go").touch()
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
    assert anyio.run(scheduled, db)[-1] == ("Finished", "Success")


@pytest.mark.timeout(60)
def test_a_killed_worker_and_run_resume_on_the_next_worker(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "held.py"
    path.write_text(HELD)
    monkeypatch.setattr(sys, "path", list(sys.path))
    register(db, path, hours_ago=2)
    worker = start_worker(db, tmp_path)
    try:
        wait_for(lambda: ran(tmp_path) == ["first", "held"])
        # A task body may start while its upstream's Success is still being committed
        # (DESIGN: pipelined, ordered commits); once held's Running is durable, first's
        # Success is too, and only then does the kill test that first is not rerun.
        wait_for(lambda: committed_states(db).get("held") == "Running")
    finally:
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its run, at once
        worker.wait()
    (tmp_path / "go").touch()

    again = start_worker(db, tmp_path, "--burst")
    assert again.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
    assert anyio.run(scheduled, db)[-1] == ("Finished", "Success")
    assert ran(tmp_path) == ["first", "held", "held"]  # first was not run again


@pytest.mark.timeout(60)
def test_a_stopping_worker_stops_runs_after_its_grace_period_and_gives_them_back(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "held.py"
    path.write_text(HELD)
    monkeypatch.setattr(sys, "path", list(sys.path))
    register(db, path, hours_ago=2)
    worker = start_worker(db, tmp_path, "--grace", "0.5")
    try:
        wait_for(lambda: committed_states(db).get("held") == "Running")
        worker.send_signal(signal.SIGINT)  # as Ctrl-C: the run itself ignores it
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):  # its runs too, whatever happened
            os.killpg(worker.pid, signal.SIGKILL)

    async def tick() -> tuple[str, int, str | None]:
        store = await Store.open(db, readonly=True)
        try:
            run = (await store.list_scheduled_runs(status=None))[-1]
        finally:
            await store.close()
        return run.status, run.crashes, run.message

    status, crashes, message = anyio.run(tick)
    assert (status, crashes) == ("Scheduled", 0)  # given back, not counted as a crash
    assert "released by stopping worker" in (message or "")
    assert committed_states(db)["held"] == "Running"  # cut short: it resumes

    (tmp_path / "go").touch()
    again = start_worker(db, tmp_path, "--burst")
    assert again.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
    assert anyio.run(scheduled, db)[-1] == ("Finished", "Success")
    assert ran(tmp_path) == ["first", "held", "held"]
