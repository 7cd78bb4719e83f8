"""Operations on scheduled runs, at the store and worker level on a fake clock: manual
runs (trigger), pause and resume, cancel, Late runs, per-flow catchup, fencing by lease
token, the worker registry, and read-only opens of a version 5 database.

Task bodies of registered flows are pickled by value; what they share with a test goes
through `shared` (a module) or `Hook` (a module-level class): both load by reference.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from pathlib import Path
from typing import Any, ClassVar

import pendulum
import pytest

from durable import Flow, Parameter, context, task, triggers
from durable.control import UNFINISHED
from durable.engine import flow_runner
from durable.engine.cancel import CancelWatch
from durable.engine.flow_runner import new_run_id, run_flow_async
from durable.errors import ConfigurationError, StoreError
from durable.liveness import Liveness, liveness, process_token
from durable.schedules import IntervalSchedule
from durable.states import Paused
from durable.store import Store
from durable.store.control import CancelOutcome, CancelResult
from durable.store.packaging import package_flow
from durable.store.records import NewScheduledRun, ScheduledRunRecord
from durable.store.schema import APPLICATION_ID, MIGRATIONS
from durable.timesource import FakeTime
from durable.worker import run_scheduled
from tests.worker import flows, shared
from tests.worker.conftest import WorkerFactory
from tests.worker.helpers import HoldingLauncher

pytestmark = pytest.mark.anyio

MINUTE = pendulum.duration(minutes=1)


class Hook:
    """Callbacks `step_two` awaits (one per call): a test's way into a running flow."""

    during: ClassVar[list[Callable[[], Awaitable[None]]]] = []


@pytest.fixture(autouse=True)
def _reset_hook() -> None:
    Hook.during.clear()


@task
def step_one() -> int:
    shared.CALLS["one"] += 1
    return 1


@task
async def step_two(x: int) -> int:
    shared.CALLS["two"] += 1
    if Hook.during:
        await Hook.during.pop()()
    return x + 1


@task
def step_three(x: int) -> int:
    shared.CALLS["three"] += 1
    return x + 1


@task
def record(n: int) -> int:
    shared.CALLS[f"n={n}"] += 1
    return n


@task(trigger=triggers.manual_only)
def gated(x: int) -> int:
    shared.CALLS["gated"] += 1
    return x


def is_alive(pid: int | None, token: str | None) -> bool:
    """What `durable cancel` asks: is this process provably running here?"""
    return liveness(pid, token) is Liveness.ALIVE


async def register(store: Store, flow: Flow, clock: FakeTime) -> None:
    """What `durable register` stores, as of the fake clock's now."""
    await store.register_flow(
        package_flow(flow, file=None, registered_at=clock.timestamp())
    )


def manual(flow_name: str, at: float, **params: Any) -> NewScheduledRun:
    """A run of version 1 for `at`, as `durable trigger` records it."""
    run_id = new_run_id()
    return NewScheduledRun(
        id=run_id, flow_name=flow_name, flow_version=1, scheduled_for=at,
        parameters_hash=f"manual:{run_id}", parameters=pickle.dumps(params),
        status="Scheduled", message="triggered (durable trigger)", created_at=at,
    )  # fmt: skip


def kinds(runs: list[ScheduledRunRecord]) -> list[tuple[str, str]]:
    return [(run.kind, run.status) for run in runs]


async def task_states(store: Store, run_id: str) -> dict[str, str]:
    return {t.task_slug: t.state for t in await store.list_task_runs(run_id)}


async def cancel(store: Store, run_id: str, now: float) -> CancelResult:
    """What `durable cancel RUN` does."""
    return await store.request_cancel(
        run_id, now=now, unfinished=UNFINISHED, is_live=is_alive
    )


# trigger ------------------------------------------------------------------------------
async def test_a_manual_run_is_claimed_and_run_with_its_parameters(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    with Flow("param") as flow:
        record(Parameter("n"))
    await register(store, flow, fake_time)
    run = manual("param", fake_time.timestamp(), n=5)
    await store.add_manual_run(run)

    report = await make_worker().run_once()

    assert (report.created, report.launched, report.finished) == (0, 1, 1)
    [found] = await store.list_scheduled_runs()
    assert (found.id, found.kind, found.status, found.message) == (
        run.id, "manual", "Finished", "Success",
    )  # fmt: skip
    assert shared.CALLS == {"n=5": 1}
    assert await store.load_parameters(run.id) == {"n": 5}


async def test_a_trigger_during_downtime_does_not_hide_the_missed_ticks(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    registered_at = fake_time.timestamp()
    fake_time.advance(10 * MINUTE)  # no worker ran meanwhile
    await store.add_manual_run(manual(registered, fake_time.timestamp()))
    [flow] = await store.list_schedulable_flows()
    assert flow.cursor == registered_at  # a manual run does not move the tick cursor

    worker = make_worker(catchup="skip")
    assert await worker.create_due_runs() == 10

    runs = await store.list_scheduled_runs()
    ticks = [r for r in runs if r.kind == "schedule"]
    assert [t.scheduled_for for t in ticks] == [
        registered_at + 60 * i for i in range(1, 11)
    ]
    assert [t.status for t in ticks] == ["Skipped"] * 9 + ["Scheduled"]
    assert kinds([r for r in runs if r.kind != "schedule"]) == [("manual", "Scheduled")]
    await worker.run_once()
    runs = await store.list_scheduled_runs()
    assert sorted(kinds(runs)) == sorted(
        [("schedule", "Skipped")] * 9
        + [("schedule", "Finished"), ("manual", "Finished")]
    )
    assert shared.CALLS == {"first": 2, "second": 2}


# pause and resume ---------------------------------------------------------------------
async def test_a_paused_schedule_records_its_due_ticks_skipped_and_runs_none(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    await store.set_paused(registered, paused=True, now=fake_time.timestamp())
    fake_time.advance(3 * MINUTE)

    report = await make_worker(catchup="all").run_once()

    assert (report.created, report.launched) == (3, 0)
    ticks = await store.list_scheduled_runs()
    assert [(t.status, t.message) for t in ticks] == [
        ("Skipped", "schedule paused")
    ] * 3
    assert shared.CALLS == {}


async def test_a_pause_skips_waiting_ticks_but_not_manual_runs(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    worker = make_worker()
    await worker.create_due_runs()
    run = manual(registered, fake_time.timestamp())
    await store.add_manual_run(run)

    skipped = await store.set_paused(registered, paused=True, now=fake_time.timestamp())

    assert skipped == 1
    await worker.run_once()
    by_kind = {r.kind: r for r in await store.list_scheduled_runs()}
    assert (by_kind["schedule"].status, by_kind["schedule"].message) == (
        "Skipped", "schedule paused",
    )  # fmt: skip
    assert (by_kind["manual"].status, by_kind["manual"].message) == (
        "Finished", "Success",
    )  # fmt: skip
    assert shared.CALLS == {"first": 1, "second": 1}


async def test_after_a_resume_the_next_ticks_run_again(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    worker = make_worker(catchup="all")
    await store.set_paused(registered, paused=True, now=fake_time.timestamp())
    for _ in range(2):
        fake_time.advance(MINUTE)
        await worker.run_once()
    await store.set_paused(registered, paused=False, now=fake_time.timestamp())
    fake_time.advance(MINUTE)

    await worker.run_once()

    ticks = await store.list_scheduled_runs()
    assert [t.status for t in ticks] == ["Skipped", "Skipped", "Finished"]
    assert [f.paused for f in await store.list_schedulable_flows()] == [False]
    assert shared.CALLS == {"first": 1, "second": 1}


# cancel -------------------------------------------------------------------------------
async def test_a_cancelled_waiting_run_is_never_claimed(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    worker = make_worker()
    await worker.create_due_runs()
    [tick] = await store.list_scheduled_runs()

    result = await cancel(store, tick.id, fake_time.timestamp())

    assert result == CancelResult(CancelOutcome.CANCELLED, "Scheduled")
    assert (await worker.run_once()).launched == 0
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.message) == ("Cancelled", "cancelled before it started")
    assert await store.find_flow_run(tick.id) is None
    assert shared.CALLS == {}


async def test_a_paused_flow_run_is_cancelled_on_the_spot(
    store: Store, fake_time: FakeTime
) -> None:
    with Flow("gate") as flow:
        gated(step_one())
    state = await run_flow_async(flow, store=store, run_id="p1", time=fake_time)
    assert isinstance(state, Paused)

    # This process ran it and is alive, but nothing runs a paused run.
    result = await cancel(store, "p1", fake_time.timestamp())

    assert result == CancelResult(CancelOutcome.CANCELLED, "Paused")
    run = await store.get_flow_run("p1")
    assert run.state == "Cancelled"
    assert run.ended_at == fake_time.timestamp()
    assert await task_states(store, "p1") == {
        "step_one-1": "Success", "gated-1": "Cancelled",
    }  # fmt: skip
    history = [(s.task_run_id is None, s.name) for s in await store.list_states("p1")]
    assert history[-2:] == [(False, "Cancelled"), (True, "Cancelled")]
    assert not await store.is_cancel_requested("p1")
    assert shared.CALLS == {"one": 1}


async def test_cancelling_an_ended_or_unknown_run_changes_nothing(
    store: Store, fake_time: FakeTime
) -> None:
    with Flow("chain") as flow:
        step_three(step_one())
    await run_flow_async(flow, store=store, run_id="done", time=fake_time)

    assert await cancel(store, "done", fake_time.timestamp()) == CancelResult(
        CancelOutcome.FINISHED, "Success"
    )
    assert await cancel(store, "nope", fake_time.timestamp()) == CancelResult(
        CancelOutcome.NOT_FOUND, None
    )
    assert (await store.get_flow_run("done")).state == "Success"
    assert not await store.is_cancel_requested("done")


class EagerWatch(CancelWatch):
    """Reads the store at every task boundary (FlowRunner's poll would be 0.5 s)."""

    def __init__(self, store: Store, run_id: str, **_: object) -> None:
        super().__init__(store, run_id, poll=0)


async def test_a_running_run_asked_to_cancel_stops_between_task_runs(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setattr(flow_runner, "CancelWatch", EagerWatch)
    with Flow("stoppable") as flow:
        step_three(step_two(step_one()))
    await register(store, flow, fake_time)
    run = manual("stoppable", fake_time.timestamp())
    await store.add_manual_run(run)
    outcomes: list[CancelResult] = []

    async def cancel_from_elsewhere() -> None:  # `durable cancel`, another connection
        other = await Store.open(store.path)
        try:
            outcomes.append(await cancel(other, context.flow_run_id, 0.0))
        finally:
            await other.close()

    Hook.during.append(cancel_from_elsewhere)

    await make_worker().run_once()

    assert [result.outcome for result in outcomes] == [CancelOutcome.REQUESTED]
    assert shared.CALLS == {"one": 1, "two": 1}
    assert await task_states(store, run.id) == {
        "step_one-1": "Success", "step_two-1": "Success", "step_three-1": "Cancelled",
    }  # fmt: skip
    assert (await store.get_flow_run(run.id)).state == "Cancelled"
    assert not await store.is_cancel_requested(run.id)
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.message) == ("Finished", "Cancelled")

    # A restart runs the cancelled task runs; the finished ones are not run again.
    copy = await store.load_registered_flow("stoppable")
    assert copy is not None
    state = await run_flow_async(
        copy.flow, store=store, run_id=run.id, restart=True, time=fake_time
    )
    assert state.is_successful()
    assert shared.CALLS == {"one": 1, "two": 1, "three": 1}
    assert set((await task_states(store, run.id)).values()) == {"Success"}


async def test_a_claimed_run_cancelled_before_its_flow_run_exists_stops_at_start(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    with Flow("early") as flow:
        step_three(step_one())
    await register(store, flow, fake_time)
    run = manual("early", fake_time.timestamp())
    await store.add_manual_run(run)
    held = HoldingLauncher()  # claimed and "launched" in this live process
    await make_worker(launcher=held, name="w").run_once()
    assert await store.find_flow_run(run.id) is None

    result = await cancel(store, run.id, fake_time.timestamp())

    assert result == CancelResult(CancelOutcome.REQUESTED, "Running")
    assert await store.is_cancel_requested(run.id)
    # The run's process starts now: its engine sees the request before any task.
    [tick] = await store.list_scheduled_runs()
    state = await run_scheduled(store, run.id, fake_time, tick.lease_token)
    assert state is False
    assert shared.CALLS == {}
    assert set((await task_states(store, run.id)).values()) == {"Cancelled"}
    assert (await store.get_flow_run(run.id)).state == "Cancelled"
    assert not await store.is_cancel_requested(run.id)  # a restart is not cancelled


async def test_a_claimed_run_whose_owner_died_is_cancelled_on_the_spot(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    with Flow("orphan") as flow:
        step_one()
    await register(store, flow, fake_time)
    run = manual("orphan", fake_time.timestamp())
    await store.add_manual_run(run)
    await make_worker(launcher=HoldingLauncher("host|boot|1"), name="w").run_once()

    result = await cancel(store, run.id, fake_time.timestamp())

    assert result == CancelResult(CancelOutcome.CANCELLED, "Running")
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.claimed_by) == ("Cancelled", None)
    assert (await make_worker(name="other").run_once()).launched == 0
    assert shared.CALLS == {}


# Late ---------------------------------------------------------------------------------
async def test_a_run_unclaimed_past_the_grace_period_is_late_and_still_runs(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    worker = make_worker(late_after=pendulum.duration(seconds=60))
    worker.stopping = True  # passes, but claims nothing
    await worker.run_once()
    fake_time.advance(pendulum.duration(seconds=59))
    await worker.run_once()
    [tick] = await store.list_scheduled_runs()
    assert tick.status == "Scheduled"  # not yet past the grace period
    fake_time.advance(pendulum.duration(seconds=2))

    await worker.run_once()

    [late, on_time] = await store.list_scheduled_runs()
    assert (late.status, late.message) == (
        "Late",
        "not started within 60 s of its time",
    )
    assert on_time.status == "Scheduled"  # due 1 s ago
    assert [r.id for r in await store.list_scheduled_runs(status="Late")] == [late.id]
    worker.stopping = False
    assert (await worker.run_once()).launched == 2
    [late, on_time] = await store.list_scheduled_runs()
    assert (late.status, late.message) == ("Finished", "Success")
    assert late.claimed_at == fake_time.timestamp()
    assert (
        late.claimed_at - late.scheduled_for == 61
    )  # when it ran: 61 s after its time


# catchup ------------------------------------------------------------------------------
async def test_a_flows_own_catchup_wins_over_the_workers(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    schedule = IntervalSchedule(flows.START, pendulum.duration(minutes=1))
    with Flow("all-of-them", schedule=schedule, catchup="all") as flow:
        step_one()
    await register(store, flow, fake_time)
    fake_time.advance(5 * MINUTE)

    await make_worker(catchup="skip", concurrency=10).run_once()

    [schedulable] = await store.list_schedulable_flows()
    assert schedulable.catchup == "all"
    ticks = await store.list_scheduled_runs()
    assert [t.status for t in ticks] == ["Finished"] * 5
    assert shared.CALLS == {"one": 5}


def test_an_unknown_catchup_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Flow("bad", catchup="bogus")  # type: ignore[arg-type]
    message = str(raised.value)
    assert "'bogus'" in message
    assert all(repr(policy) in message for policy in ("skip", "all", "none"))


# fencing ------------------------------------------------------------------------------
async def test_a_process_that_lost_its_lease_writes_nothing(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    fake_time.advance(MINUTE)
    first = make_worker(launcher=HoldingLauncher(), name="first")
    await first.run_once()
    [claim] = first.claims.values()
    now = fake_time.timestamp()
    # Another worker takes the run over: released, then claimed under token B.
    released = await store.release_crashed_run(
        claim.run.id, claim.token, now=now, reason="test", max_crashes=3
    )
    assert released == "Scheduled"
    taken = await store.claim_due_run(
        worker="second", token="B", now=now, lease_until=now + 30, pid=os.getpid(),
        pid_started=process_token(os.getpid()),
    )  # fmt: skip
    assert taken is not None
    assert taken.id == claim.run.id

    zombie = await Store.open(store.path)  # the first owner's process
    try:
        with pytest.raises(StoreError, match="lease lost"):
            await run_scheduled(zombie, claim.run.id, fake_time, claim.token)
    finally:
        await zombie.close()

    # It found its claim gone before its first write: nothing ran, nothing is stored.
    assert await store.find_flow_run(claim.run.id) is None
    assert shared.CALLS == {}
    assert await run_scheduled(store, claim.run.id, fake_time, "B")
    assert (await store.get_flow_run(claim.run.id)).state == "Success"
    assert await store.finish_scheduled_run(claim.run.id, "B", state="Success", now=now)
    assert shared.CALLS == {"first": 1, "second": 1}


async def test_a_lease_lost_mid_run_stops_its_writes_at_once(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    with Flow("stoppable") as flow:
        step_three(step_two(step_one()))
    await register(store, flow, fake_time)
    await store.add_manual_run(manual("stoppable", fake_time.timestamp()))
    first = make_worker(launcher=HoldingLauncher(), name="first")
    await first.run_once()
    [claim] = first.claims.values()

    async def take_over() -> None:  # another worker, on its own connection
        other = await Store.open(store.path)
        try:
            now = fake_time.timestamp()
            await other.release_crashed_run(
                claim.run.id, claim.token, now=now, reason="test", max_crashes=3
            )
            await other.claim_due_run(
                worker="second", token="B", now=now, lease_until=now + 30, pid=1,
                pid_started="elsewhere",
            )  # fmt: skip
        finally:
            await other.close()

    Hook.during.append(take_over)
    zombie = await Store.open(store.path)
    try:
        with pytest.raises(StoreError, match="lease lost"):
            await run_scheduled(zombie, claim.run.id, fake_time, claim.token)
    finally:
        with pytest.raises(StoreError, match="lease lost"):
            await zombie.close()

    # Nothing after the takeover was recorded: no task run finished after step_two's
    # body ran, and the flow run never ended.
    assert shared.CALLS["two"] == 1
    states = await task_states(store, claim.run.id)
    assert states["step_two-1"] != "Success"
    assert states["step_three-1"] == "Pending"
    assert (await store.get_flow_run(claim.run.id)).ended_at is None
    [tick] = await store.list_scheduled_runs()
    assert (tick.claimed_by, tick.lease_token) == ("second", "B")


# workers ------------------------------------------------------------------------------
async def test_a_worker_registers_itself_heartbeats_and_records_its_stop(
    store: Store, registered: str, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    started = fake_time.timestamp()
    worker = make_worker(launcher=HoldingLauncher(), name="w1", concurrency=3)
    fake_time.advance(MINUTE)
    await worker.run_once()
    [row] = await store.list_workers()
    assert (row.name, row.pid, row.concurrency, row.running) == (
        "w1",
        os.getpid(),
        3,
        1,
    )
    assert (row.started_at, row.heartbeat_at, row.stopped_at) == (
        started + 60, started + 60, None,
    )  # fmt: skip
    fake_time.advance(pendulum.duration(seconds=5))
    await worker.run_once()
    assert (await store.list_workers())[0].heartbeat_at == started + 65

    await worker.stopped()

    [row] = await store.list_workers()
    assert row.stopped_at == started + 65


# older databases ----------------------------------------------------------------------
async def test_a_read_only_open_of_a_version_5_database_lists_without_migrating(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v5.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("BEGIN;" + "".join(MIGRATIONS[:5]) + "COMMIT;")
        conn.execute(
            "INSERT INTO scheduled_runs (id, flow_name, flow_version, scheduled_for,"
            " parameters_hash, parameters, status, created_at)"
            " VALUES ('s1', 'old', 1, 60.0, 'h', x'80', 'Finished', 0.0)"
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 5")
        conn.commit()

    store = await Store.open(path, readonly=True)
    try:
        [run] = await store.list_scheduled_runs()
        assert (run.id, run.status, run.kind, run.claimed_at) == (
            "s1", "Finished", "schedule", None,
        )  # fmt: skip
        assert await store.list_scheduled_runs(status="Late") == []
        assert (await store.find_scheduled_run("s1")) == run
        assert await store.list_workers() == []
        assert await store.list_flows() == []
    finally:
        await store.close()

    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (5,)
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert "workers" not in tables
