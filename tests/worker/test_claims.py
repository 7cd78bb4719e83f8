"""Stages 2 and 3: due runs are claimed once, within the concurrency limit, under a
lease that heartbeats renew; a dead owner's run is resumed, a poison run given up."""

from __future__ import annotations

import os

import pendulum
import pytest

from durable.liveness import Liveness, liveness, process_token
from durable.store import Store
from durable.store.packaging import package_flow
from durable.timesource import FakeTime
from tests.worker import flows, shared
from tests.worker.conftest import WorkerFactory
from tests.worker.helpers import CrashOnceLauncher, HoldingLauncher

pytestmark = pytest.mark.anyio

MINUTE = pendulum.duration(minutes=1)
ELSEWHERE = "another-host|boot|123"
"""The start token of a process on another machine: its liveness is unknown here."""


async def test_claims_stay_within_the_concurrency_limit(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(5 * MINUTE)
    launcher = HoldingLauncher()
    worker = make_worker(launcher=launcher, concurrency=2, catchup="all")
    assert (await worker.run_once()).launched == 2
    assert (await worker.run_once()).launched == 0
    assert await store.count_claims(worker.name) == 2
    next(iter(launcher.handles.values())).end(0)
    report = await worker.run_once()
    assert (report.finished, report.launched) == (1, 1)
    assert len(await store.list_scheduled_runs(status="Running")) == 2


async def test_a_claim_records_its_lease_and_process(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    worker = make_worker(launcher=HoldingLauncher(), name="w1")
    await worker.run_once()
    [run] = await store.list_scheduled_runs(status="Running")
    assert run.claimed_by == "w1"
    assert run.lease_expires_at == fake_time.timestamp() + 30
    assert (run.pid, run.pid_started) == (os.getpid(), process_token(os.getpid()))
    assert run.launches == 1


async def test_a_due_run_is_claimed_by_one_worker_only(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    one = make_worker(launcher=HoldingLauncher(), name="one")
    two = make_worker(launcher=HoldingLauncher(), name="two")
    await one.create_due_runs()
    assert await two.claim_and_launch() == 1
    assert await one.claim_and_launch() == 0
    assert (await store.count_claims("one"), await store.count_claims("two")) == (0, 1)


async def test_heartbeats_keep_a_lease_and_an_expired_one_is_taken_over(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    owner = make_worker(launcher=HoldingLauncher(ELSEWHERE), name="owner")
    other = make_worker(name="other")
    await owner.run_once()
    fake_time.advance(pendulum.duration(seconds=20))
    await owner.run_once()  # heartbeat: the lease now ends 30 s from here
    fake_time.advance(pendulum.duration(seconds=20))
    assert (await other.recover()) == 0  # `other` starts watching the lease
    fake_time.advance(pendulum.duration(seconds=20))
    # Past its end by the wall clock, but seen unrenewed for 20 s only: expiry is
    # timed on the watcher's monotonic clock, so that clock steps cannot steal it.
    assert (await other.recover()) == 0
    fake_time.advance(pendulum.duration(seconds=10))
    assert (await other.recover()) == 1
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.crashes) == ("Scheduled", 1)
    assert "lease" in (tick.message or "")
    # The stale owner's late write is fenced off: its token no longer matches.
    token = next(iter(owner.claims.values())).token
    assert not await store.finish_scheduled_run(tick.id, token, state="Success", now=0)


async def test_a_dead_owners_run_resumes_without_rerunning_finished_tasks(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    flow = flows.crashing()
    await store.register_flow(
        package_flow(flow, file=None, registered_at=fake_time.timestamp())
    )
    fake_time.advance(MINUTE)
    report = await make_worker(launcher=CrashOnceLauncher(store, fake_time)).run_once()
    assert report.launched == 2  # crashed once, then launched again and finished
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.message, tick.crashes) == ("Finished", "Success", 1)
    assert shared.CALLS == {"first": 1, "halt": 2}
    assert (await store.get_flow_run(tick.id)).state == "Success"


async def test_a_reused_pid_is_a_dead_owner_and_its_run_is_recovered_at_once(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    host, boot, _ = process_token(os.getpid()).split("|")
    reused = f"{host}|{boot}|1"  # this pid, but a process that started at another time
    assert liveness(os.getpid(), reused) is Liveness.DEAD
    fake_time.advance(MINUTE)
    await make_worker(launcher=HoldingLauncher(reused), name="gone").run_once()
    report = await make_worker(name="rescuer").run_once()
    assert report.recovered == 1
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.message, tick.crashes) == ("Finished", "Success", 1)
    assert shared.CALLS == {"first": 1, "second": 1}


async def test_a_run_that_crashes_k_times_is_marked_crashed(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    launcher = HoldingLauncher()
    worker = make_worker(launcher=launcher, max_crashes=3)
    for _ in range(5):
        await worker.run_once()
        for handle in launcher.handles.values():
            handle.end(-9)
    await worker.run_once()
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.crashes, tick.launches) == ("Crashed", 3, 3)
    assert "crashed 3 times" in (tick.message or "")


async def test_a_crashed_flow_run_is_marked_failed(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    flow = flows.crashing()
    await store.register_flow(
        package_flow(flow, file=None, registered_at=fake_time.timestamp())
    )
    fake_time.advance(MINUTE)
    launcher = CrashOnceLauncher(store, fake_time)
    await make_worker(launcher=launcher, max_crashes=1).run_once()
    [tick] = await store.list_scheduled_runs()
    assert tick.status == "Crashed"
    run = await store.get_flow_run(tick.id)
    assert run.state == "Failed"
    assert "crashed 1 times" in (run.state_message or "")


def test_liveness_of_processes() -> None:
    pid = os.getpid()
    assert liveness(pid, process_token(pid)) is Liveness.ALIVE
    assert liveness(pid, ELSEWHERE) is Liveness.UNKNOWN
    assert liveness(None, None) is Liveness.UNKNOWN
    assert liveness(2**22 + 12345, process_token(pid)) is Liveness.DEAD


class FailingLauncher:
    async def launch(self, run: object) -> object:
        raise OSError("no processes left")


async def test_a_launch_that_fails_counts_as_a_crash(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    await make_worker(launcher=FailingLauncher(), max_crashes=2).run_once()
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.crashes) == ("Crashed", 2)
    assert "no processes left" in (tick.message or "")
