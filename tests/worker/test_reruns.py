"""Re-runs through the control API: a worker carries out a retry from failure, a restart
from a task, and an approval; each is in the audit log, refused ones too."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from durable import Flow, control, task
from durable.engine.flow_runner import run_flow_async
from durable.errors import DurableError
from durable.store import Store
from durable.store.packaging import package_flow
from durable.timesource import FakeTime
from durable.utilities.tasks import pause_task
from tests.worker import shared
from tests.worker.conftest import WorkerFactory

pytestmark = pytest.mark.anyio


def body(name: str, x: int) -> int:
    shared.CALLS[name] += 1
    if name in shared.BROKEN:
        raise RuntimeError(f"{name} is broken")
    return x + 1


@task
def extract() -> int:
    return body("extract", 0)


@task
def left(x: int) -> int:
    return body("left", x)


@task
def right(x: int) -> int:
    return body("right", x)


@task
def join(a: int, b: int) -> int:
    return body("join", a + b)


@task
def gate(x: int) -> int:
    shared.CALLS["gate"] += 1
    pause_task("needs a look")
    return x


def diamond() -> Flow:
    with Flow("diamond") as flow:
        x = extract()
        join(left(x), right(x))
    return flow


async def task_states(store: Store, run_id: str) -> dict[str, str]:
    return {t.task_slug: t.state for t in await store.list_task_runs(run_id)}


async def failed_run(store: Store, clock: FakeTime, broken: set[str]) -> str:
    """Register the diamond and run it once through the worker with `broken` failing."""
    flow = diamond()
    await store.register_flow(
        package_flow(flow, file=None, registered_at=clock.timestamp())
    )
    triggered = await control.trigger(store, "diamond", {}, actor="ann", time=clock)
    shared.BROKEN |= broken
    return triggered.run.id


async def test_a_retry_from_failure_reruns_the_failed_branches_only(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    run_id = await failed_run(store, fake_time, {"left", "right"})
    worker = make_worker()
    await worker.run_once()
    assert (await store.get_flow_run(run_id)).state == "Failed"
    preview = await control.plan_restart(store, run_id)
    assert [p.name for p in preview.reset] == ["left", "right", "join"]
    assert [p.name for p in preview.reused] == ["extract"]
    assert [p.reason for p in preview.reset] == [
        "Failed", "Failed", "downstream of left-1",
    ]  # fmt: skip

    shared.BROKEN.clear()
    shared.CALLS.clear()
    queued = await control.restart(store, run_id, actor="ann", time=fake_time)
    assert queued.run_id == run_id
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.rerun) == ("Scheduled", "restart")
    assert (
        await store.mark_late(overdue_before=fake_time.timestamp() + 3600, grace=1) == 0
    )

    report = await worker.run_once()

    assert report.launched == 1
    assert shared.CALLS == {"left": 1, "right": 1, "join": 1}  # extract reused
    assert (await store.get_flow_run(run_id)).state == "Success"
    [tick] = await store.list_scheduled_runs()
    assert (tick.status, tick.rerun, tick.message) == ("Finished", None, "Success")
    actions = await store.list_actions()
    assert [(a.actor, a.verb, a.ok) for a in actions] == [
        ("ann", "restart", True), ("ann", "trigger", True),
    ]  # fmt: skip


async def test_a_restart_from_a_task_reruns_it_and_its_downstream(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    run_id = await failed_run(store, fake_time, set())
    worker = make_worker()
    await worker.run_once()
    shared.CALLS.clear()

    await control.restart(store, run_id, from_tasks=["left"], time=fake_time)
    await worker.run_once()

    assert shared.CALLS == {"left": 1, "join": 1}
    [tick] = await store.list_scheduled_runs()
    assert (
        tick.rerun is None
    )  # consumed with the resets: a crash now resumes, no restart


async def test_a_restart_is_refused_when_nothing_failed_or_the_run_is_held(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    run_id = await failed_run(store, fake_time, set())
    await make_worker().run_once()  # all succeed
    with pytest.raises(DurableError, match="has no failed task runs to retry"):
        await control.restart(store, run_id, time=fake_time)
    with pytest.raises(DurableError, match="no task 'nope'; its tasks are: extract-1"):
        await control.restart(store, run_id, from_tasks=["nope"], time=fake_time)
    await control.restart(store, run_id, from_tasks=["left"], time=fake_time)
    claimed = await store.claim_due_run(
        worker="w1", token="t", now=fake_time.timestamp(),
        lease_until=fake_time.timestamp() + 60, pid=1, pid_started="x",
    )  # fmt: skip
    assert claimed is not None
    assert claimed.id == run_id
    with pytest.raises(DurableError, match="is being run by worker 'w1'"):
        await control.restart(store, run_id, from_tasks=["left"], time=fake_time)
    actions = await store.list_actions()
    assert [(a.verb, a.ok) for a in actions][:4] == [
        ("restart", False), ("restart", True), ("restart", False), ("restart", False),
    ]  # fmt: skip
    assert "no task 'nope'" in actions[2].outcome


async def test_an_approval_is_queued_and_a_worker_continues_the_run(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory
) -> None:
    with Flow("gated") as flow:
        left(gate(extract()))
    await store.register_flow(package_flow(flow, file=None, registered_at=0))
    run_id = (await control.trigger(store, "gated", {}, time=fake_time)).run.id
    worker = make_worker()
    await worker.run_once()
    assert (await store.get_flow_run(run_id)).state == "Paused"

    with pytest.raises(
        DurableError, match="is Success, not Paused; paused ones: gate-1"
    ):
        await control.approve(store, run_id, "extract", time=fake_time)
    await control.approve(store, run_id, "gate", actor="bob", time=fake_time)
    await worker.run_once()

    assert (await store.get_flow_run(run_id)).state == "Success"
    assert shared.CALLS == {"extract": 1, "gate": 2, "left": 1}
    assert (await store.list_actions())[0].verb == "approve"


async def test_a_run_started_by_durable_run_is_restarted_from_its_file(
    store: Store, fake_time: FakeTime, make_worker: WorkerFactory, tmp_path: Path
) -> None:
    source = tmp_path / "flows.py"
    source.write_text(
        "from durable import Flow, task\n"
        "from tests.worker import shared\n"
        "@task\n"
        "def only() -> int:\n"
        "    shared.CALLS['only'] += 1\n"
        "    if 'only' in shared.BROKEN:\n"
        "        raise RuntimeError('broken')\n"
        "    return 1\n"
        "with Flow('from_file') as flow:\n"
        "    only()\n"
    )
    from durable.cli.loading import load_flow

    shared.BROKEN.add("only")
    run_id = "from-file-run"
    flow = load_flow(str(source), None)
    await run_flow_async(flow, store=store, time=fake_time, run_id=run_id)
    shared.BROKEN.clear()

    await control.restart(store, run_id, time=fake_time)
    [tick] = await store.list_scheduled_runs()
    assert (tick.id, tick.kind, pickle.loads(tick.parameters)) == (run_id, "manual", {})
    await make_worker().run_once()

    assert (await store.get_flow_run(run_id)).state == "Success"
    assert shared.CALLS == {"only": 2}
