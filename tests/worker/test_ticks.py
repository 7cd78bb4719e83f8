"""Stage 1: due runs are created once per tick, and missed ticks follow the catchup
policy (every tick is a row: run, or recorded as Skipped)."""

from __future__ import annotations

import pendulum
import pytest

from durable.store import Store
from durable.store.records import ScheduledRunRecord
from durable.timesource import FakeTime
from durable.worker import InProcessLauncher, Worker
from tests.worker.conftest import WorkerFactory

pytestmark = pytest.mark.anyio

TWO_HOURS = pendulum.duration(hours=2)


def statuses(runs: list[ScheduledRunRecord]) -> list[str]:
    return [run.status for run in runs]


async def test_nothing_is_due_before_the_first_tick(
    store: Store, registered: str, make_worker: WorkerFactory
) -> None:
    report = await make_worker().run_once()
    assert report.created == 0
    assert await store.list_scheduled_runs() == []


async def test_a_due_tick_becomes_one_run_that_runs(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(pendulum.duration(minutes=1))
    report = await make_worker().run_once()
    assert (report.created, report.launched, report.finished) == (1, 1, 1)
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.message) == ("Finished", "Success")
    assert tick.scheduled_for == fake_time.timestamp()
    run = await store.get_flow_run(tick.id)
    assert run.state == "Success"


@pytest.mark.parametrize(
    ("catchup", "expected"),
    [
        ("skip", ["Skipped"] * 119 + ["Finished"]),
        ("all", ["Finished"] * 120),
        ("none", ["Skipped"] * 119 + ["Finished"]),
    ],
)
async def test_two_hours_of_downtime_follow_the_catchup_policy(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory,
    catchup: str, expected: list[str],
) -> None:  # fmt: skip
    fake_time.advance(TWO_HOURS)
    worker = make_worker(catchup=catchup, concurrency=200)
    await worker.run_once()
    ticks = await store.list_scheduled_runs()
    assert statuses(ticks) == expected
    assert len({t.scheduled_for for t in ticks}) == 120  # every tick, once
    skipped = [t for t in ticks if t.status == "Skipped"]
    assert all(catchup in (t.message or "") for t in skipped)


async def test_none_runs_no_tick_that_is_already_late(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(TWO_HOURS + pendulum.duration(seconds=45))
    late_after = pendulum.duration(seconds=30)
    await make_worker(catchup="none", late_after=late_after).run_once()
    ticks = await store.list_scheduled_runs()
    assert statuses(ticks) == ["Skipped"] * 120


async def test_passes_and_workers_never_create_a_tick_twice(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(pendulum.duration(minutes=10))
    one, two = make_worker(name="one"), make_worker(name="two")
    assert (await one.run_once()).created == 10
    assert (await one.run_once()).created == 0
    assert (await two.run_once()).created == 0
    fake_time.advance(pendulum.duration(minutes=1))
    assert (await two.run_once()).created == 1
    assert (await one.run_once()).created == 0
    ticks = await store.list_scheduled_runs()
    assert len(ticks) == len({t.id for t in ticks}) == 11
    assert statuses(ticks).count("Finished") == 2
    assert store is one.store is two.store


async def test_a_stale_view_of_the_schedule_writes_nothing(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(pendulum.duration(minutes=3))
    [flow] = await store.list_schedulable_flows()
    await make_worker().create_due_runs()
    assert await store.add_scheduled_runs(flow.name, flow.cursor, []) == 0
    assert len(await store.list_scheduled_runs()) == 3


async def test_a_worker_per_database_file_sees_the_same_ticks(
    store: Store, registered: str, fake_time: FakeTime
) -> None:
    other = await Store.open(store.path)
    try:
        fake_time.advance(pendulum.duration(minutes=5))
        mine = Worker(store, fake_time, InProcessLauncher(store, fake_time), name="a")
        theirs = Worker(other, fake_time, InProcessLauncher(other, fake_time), name="b")
        assert (await theirs.create_due_runs()) == 5
        assert (await mine.create_due_runs()) == 0
    finally:
        await other.close()
    assert len(await store.list_scheduled_runs()) == 5
