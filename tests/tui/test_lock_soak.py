"""Issue 5 acceptance: while a worker writes continuously, the TUI open on the same
database causes zero lock errors on either side (RELIABILITY group D, the TUI's part).

A real `durable worker` runs a flow every second whose tasks log as they go; the app,
headless, polls every 0.2 s while the test walks it through every area, a run's detail
and its logs. Any poll that fails reaches `DurableApp.db_error`; any worker-side lock
error reaches its log. 10 s in `make test`, 60 s under `make test-slow`.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import anyio
import pytest

from durable.store import Store
from durable.timesource import SYSTEM_TIME
from tests.worker.processes import register_file, start_worker
from tui.app import DurableApp

FLOW = """\
import logging
from datetime import timedelta

import pendulum

from durable import Flow, task
from durable.schedules import IntervalSchedule

log = logging.getLogger("soak")


@task
def chatty(i):
    for n in range(20):
        log.info("task %s line %s", i, n)
    return i


schedule = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(seconds=1))
with Flow("chatter", schedule=schedule) as flow:
    for i in range(5):
        chatty(i)
"""

KEYS = [
    "2",
    "enter",
    "l",
    "G",
    "escape",
    "1",
    "3",
    "4",
    "2",
    "j",
    "enter",
    "d",
    "escape",
]
"""A walk through the areas, a run's detail, its logs and its graph, repeated."""


async def finished_runs(db: Path) -> int:
    store = await Store.open(db, readonly=True)
    try:
        return len(await store.list_scheduled_runs(status="Finished"))
    finally:
        await store.close()


@pytest.mark.parametrize(
    "seconds",
    # Both under `make test-slow`: tests/reliability/test_concurrency.py's D1 (four
    # workers, the TUI and the CLI on one database, 60 s) covers this in `make test`.
    [
        pytest.param(10, marks=pytest.mark.slow),
        pytest.param(60, marks=[pytest.mark.slow, pytest.mark.timeout(240)]),
    ],
    ids=lambda s: f"{s}s",
)
async def test_the_tui_and_a_busy_worker_never_see_a_locked_database(
    tmp_path: Path, seconds: int
) -> None:
    db, source = tmp_path / "soak.db", tmp_path / "chatter.py"
    source.write_text(FLOW)
    await anyio.to_thread.run_sync(
        lambda: register_file(db, source, registered_at=SYSTEM_TIME.timestamp())
    )
    worker = start_worker(db, tmp_path, "--catchup", "skip")
    errors: list[Exception] = []
    try:
        app = DurableApp(db, refresh=0.2)
        app.db_error = errors.append  # type: ignore[method-assign,assignment]
        async with app.run_test(size=(120, 40)) as pilot:
            deadline = SYSTEM_TIME.timestamp() + seconds
            for key in itertools.cycle(KEYS):
                if SYSTEM_TIME.timestamp() >= deadline:
                    break
                await pilot.press(key)
                await pilot.pause(0.25)  # a soak runs for its duration, on purpose
            polls = app.model.queries
    finally:
        worker.terminate()
        code = worker.wait(timeout=60)
    log = (tmp_path / "worker.log").read_text(errors="replace")

    assert errors == []
    assert "locked" not in log.lower(), log[-3000:]
    assert code == 0, log[-3000:]
    done = await finished_runs(db)
    assert done >= seconds // 2, f"the worker finished only {done} runs in {seconds} s"
    assert polls > seconds, f"the TUI read only {polls} times in {seconds} s"
