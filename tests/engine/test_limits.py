"""Task concurrency limits by tag: at most N task runs with a tag run at once, within a
flow run and across flow runs on one database; slots of a dead process are taken back.

Bodies are async and yield a few times while they hold their slot; waiting task runs poll
on a fake clock that the test moves on whenever everything sleeps, so nothing depends on
real time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
import pendulum
import pytest

from durable import Flow, task
from durable.engine.flow_runner import run_flow_async
from durable.executors import ConcurrentExecutor
from durable.liveness import process_token
from durable.store import Store
from durable.timesource import FakeTime
from tests.engine.helpers import rows

pytestmark = pytest.mark.anyio

START = pendulum.datetime(2026, 11, 1, tz="UTC")


class Gauge:
    """How many bodies run now, and the most that ever ran at once.

    A body holds on until `together` bodies run at once (or a bounded while has passed,
    for the last ones), so the most reached does not depend on thread timing.
    """

    def __init__(self, together: int) -> None:
        self.together = together
        self.now = self.most = self.ran = 0

    async def hold(self) -> None:
        self.now += 1
        self.ran += 1
        self.most = max(self.most, self.now)
        for _ in range(300):
            if self.now >= self.together:
                break
            await anyio.to_thread.run_sync(lambda: None)  # others take their slots
        await anyio.lowlevel.checkpoint()
        self.now -= 1


def fan(name: str, gauge: Gauge, width: int, tags: list[str]) -> Flow:
    @task(tags=tags)
    async def query(i: int) -> int:
        await gauge.hold()
        return i

    with Flow(name, executor=ConcurrentExecutor(max_workers=width)) as flow:
        for i in range(width):
            query(i)
    return flow


async def drive(clock: FakeTime, *runs: object) -> None:
    """Await the runs while moving the clock on whenever every one of them sleeps."""
    done: list[object] = []

    async def one(run: object) -> None:
        done.append(await run)  # type: ignore[misc]

    async with anyio.create_task_group() as group:
        for run in runs:
            group.start_soon(one, run)
        while len(done) < len(runs):
            await anyio.lowlevel.checkpoint()
            await anyio.to_thread.run_sync(lambda: None)  # the writer thread commits
            if clock.sleepers:
                clock.advance(min(w for w, _ in clock._sleepers) - clock.now())


async def test_a_limit_caps_how_many_tagged_task_runs_run_at_once(db: Path) -> None:
    store, clock, gauge = await Store.open(db), FakeTime(START), Gauge(2)
    try:
        await store.set_limit("db", 2)
        flow = fan("fan", gauge, 6, ["db", "other"])
        await drive(clock, run_flow_async(flow, store=store, time=clock))
    finally:
        await store.close()

    assert (gauge.ran, gauge.most) == (6, 2)
    assert rows(db, "SELECT COUNT(*) FROM concurrency_slots") == [
        (0,)
    ]  # all given back
    assert rows(db, "SELECT state, COUNT(*) FROM task_runs GROUP BY state") == [
        ("Success", 6)
    ]


async def test_the_limit_holds_across_flow_runs_and_untagged_tasks_are_free(
    db: Path,
) -> None:
    store, clock = await Store.open(db), FakeTime(START)
    tagged, free = Gauge(2), Gauge(4)  # tagged: would run 2 at once if not limited
    try:
        await store.set_limit("db", 1)
        await drive(
            clock,
            run_flow_async(fan("a", tagged, 3, ["db"]), store=store, time=clock),
            run_flow_async(fan("b", tagged, 3, ["db"]), store=store, time=clock),
            run_flow_async(fan("c", free, 4, ["web"]), store=store, time=clock),
        )
    finally:
        await store.close()

    assert (tagged.ran, tagged.most) == (6, 1)
    assert (free.ran, free.most) == (4, 4)


async def test_a_dead_process_s_slot_is_taken_back(db: Path) -> None:
    dead = await anyio.run_process(
        [sys.executable, "-c", "import os; print(os.getpid())"]
    )
    pid = int(dead.stdout)  # a process that has exited
    store, clock, gauge = await Store.open(db), FakeTime(START), Gauge(2)
    try:
        await store.set_limit("db", 1)
        assert await store.take_slots(
            ["db"], "ghost", pid=pid, pid_started=process_token(pid), now=0,
            is_live=lambda *_: True,
        )  # fmt: skip
        [limit] = await store.list_limits()
        assert limit.holders == ("ghost",)
        await drive(clock, run_flow_async(fan("f", gauge, 2, ["db"]), store=store,
                                          time=clock))  # fmt: skip
    finally:
        await store.close()

    assert (gauge.ran, gauge.most) == (2, 1)
    assert rows(db, "SELECT COUNT(*) FROM concurrency_slots") == [(0,)]
