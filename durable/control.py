"""The control API: what `durable trigger`, `cancel`, `schedule pause|resume` and the
terminal UI's retry, re-run and approve do, as async functions on an open store, so the
CLI and the terminal UI act the same way.

Each function is one short write transaction (or two) through the store; none runs a
flow (a restart or an approval is queued for a worker, as Prefect 1's UI did for its
agent). Each is recorded in the audit log (`actions`: who, when, what, on what, and how
it ended). Errors are DurableErrors whose message names the thing and says what to do.
"""

from __future__ import annotations

import getpass
import json
import pickle
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from durable.errors import DurableError, RunNotFoundError
from durable.liveness import Liveness, liveness
from durable.store import Store
from durable.store.control import CancelResult
from durable.store.records import NewScheduledRun, TaskRunRecord, Transition
from durable.store.reruns import RESUME, restart_request
from durable.timesource import SYSTEM_TIME, TimeSource

if TYPE_CHECKING:
    from durable.restarts import RestartPlan

T = TypeVar("T")

UNFINISHED = (
    "Pending", "Scheduled", "Paused", "Resume", "Retrying", "Running", "Cancelling",
    "Looped",
)  # fmt: skip
"""State names of flow and task runs that have not ended (a loop's round included)."""


def is_live(pid: int | None, token: str | None) -> bool:
    """Whether the process (pid, start token) is provably running on this machine."""
    return liveness(pid, token) is Liveness.ALIVE


@dataclass(frozen=True, slots=True)
class Triggered:
    """A run asked for by `trigger`, and whether a live worker will pick it up."""

    run: NewScheduledRun
    served: bool


def current_user() -> str:
    """The OS user, the actor the audit log names."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid
        return "an unnamed user"


async def audited(
    store: Store, verb: str, target: str, action: Awaitable[T],
    describe: Callable[[T], str], *, actor: str | None, time: TimeSource,
) -> T:  # fmt: skip
    """Await `action` and record it in the audit log, refused or done."""
    actor = actor or current_user()
    try:
        result = await action
    except DurableError as exc:
        await store.record_action(at=time.timestamp(), actor=actor, verb=verb,
                                  target=target, outcome=str(exc), ok=False)  # fmt: skip
        raise
    await store.record_action(at=time.timestamp(), actor=actor, verb=verb,
                              target=target, outcome=describe(result), ok=True)  # fmt: skip
    return result


async def trigger(
    store: Store, flow_name: str, parameters: dict[str, Any], *,
    version: int | None = None, actor: str | None = None, time: TimeSource = SYSTEM_TIME,
) -> Triggered:  # fmt: skip
    """Record a run of a registered flow for now; a worker claims and runs it.

    Raises:
        DurableError: the flow (or version) is not registered, or a parameter is
            unknown, missing or invalid.
    """
    return await audited(
        store, "trigger", flow_name,
        _trigger(store, flow_name, parameters, version, time),
        lambda t: f"run {t.run.id} created", actor=actor, time=time,
    )  # fmt: skip


async def _trigger(
    store: Store, flow_name: str, parameters: dict[str, Any], version: int | None,
    time: TimeSource,
) -> Triggered:  # fmt: skip
    from durable.engine.flow_runner import new_run_id

    registered = await store.load_registered_flow(flow_name, version)
    if registered is None:
        which = f"version {version} of flow" if version else "flow"
        raise DurableError(
            f"No registered {which} {flow_name!r}; register it with: durable "
            "register FILE (durable flows lists what is registered)"
        )
    registered.flow.validate_parameters(dict(parameters))
    run_id, now = new_run_id(), time.timestamp()
    run = NewScheduledRun(
        id=run_id, flow_name=flow_name, flow_version=registered.version,
        scheduled_for=now, parameters_hash=f"manual:{run_id}",
        parameters=pickle.dumps(parameters), status="Scheduled",
        message="triggered (durable trigger)", created_at=now,
    )  # fmt: skip
    await store.add_manual_run(run)
    return Triggered(run, await served(store))


async def served(store: Store) -> bool:
    """Whether a live worker serves the database (and so will run what is queued)."""
    workers = await store.list_workers()
    return any(w.stopped_at is None and is_live(w.pid, w.pid_started) for w in workers)


async def resolve_run(store: Store, run_id: str) -> str:
    """Return the full id of a flow run (a unique prefix works) or a scheduled run.

    Raises:
        RunNotFoundError: no such run.
    """
    try:
        return (await store.get_flow_run(run_id)).id
    except RunNotFoundError:
        if await store.find_scheduled_run(run_id) is not None:
            return run_id
        raise


async def cancel(
    store: Store, run_id: str, *, actor: str | None = None,
    time: TimeSource = SYSTEM_TIME,
) -> tuple[str, CancelResult]:  # fmt: skip
    """Cancel a run (a unique prefix of its id works); return its full id and outcome.

    A run nothing runs is Cancelled at once; a running one is asked to stop at its next
    task boundary (see docs/worker.md).
    """

    async def act() -> tuple[str, CancelResult]:
        full = await resolve_run(store, run_id)
        result = await store.request_cancel(
            full, now=time.timestamp(), unfinished=UNFINISHED, is_live=is_live
        )
        return full, result

    return await audited(
        store, "cancel", run_id, act(), lambda r: r[1].outcome.value,
        actor=actor, time=time,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Requeued:
    """A run queued for a worker again (a restart or an approval)."""

    run_id: str
    served: bool
    """Whether a live worker will pick it up (else it waits for `durable worker`)."""


async def restart(
    store: Store, run_id: str, *, from_tasks: Sequence[str] | None = None,
    actor: str | None = None, time: TimeSource = SYSTEM_TIME,
) -> Requeued:  # fmt: skip
    """Queue a run for a worker to retry from failure (its failed task runs and what
    is downstream of them run again; successes are reused), or from `from_tasks`.

    `durable.restarts.plan_restart` says which task runs that is, for a preview.

    Raises:
        DurableError: no such run, it is running, or it has nothing to run again.
    """
    from durable.restarts import RESTARTABLE

    async def act() -> Requeued:
        full = await resolve_run(store, run_id)
        task_runs = await store.list_task_runs(full)
        start = None if from_tasks is None else task_slugs(full, task_runs, from_tasks)
        if start is None and not any(t.state in RESTARTABLE for t in task_runs):
            raise DurableError(
                f"Run {full!r} has no failed task runs to retry; to run it all again, "
                "trigger a new run"
            )
        what = "retry from failure" if start is None else (
            "restart from " + ", ".join(start))  # fmt: skip
        await store.queue_rerun(
            full, restart_request(start), now=time.timestamp(), is_live=is_live,
            message=f"{what} requested by {actor or current_user()}",
        )  # fmt: skip
        return Requeued(full, await served(store))

    target = run_id if from_tasks is None else f"{run_id} from {','.join(from_tasks)}"
    return await audited(
        store, "restart", target, act(), lambda r: "queued for a worker",
        actor=actor, time=time,
    )  # fmt: skip


async def rerun(
    store: Store, run_id: str, *, actor: str | None = None,
    time: TimeSource = SYSTEM_TIME,
) -> Triggered:  # fmt: skip
    """Run a run's flow again as a new run, with the same parameters.

    Raises:
        DurableError: no such run, or its flow is not registered.
    """

    async def act() -> Triggered:
        record = await store.get_flow_run(run_id)
        parameters = await store.load_parameters(record.id)
        return await _trigger(store, record.flow_name, dict(parameters), None, time)

    return await audited(
        store, "rerun", run_id, act(), lambda t: f"run {t.run.id} created",
        actor=actor, time=time,
    )  # fmt: skip


async def approve(
    store: Store, run_id: str, task_ref: str, *, actor: str | None = None,
    time: TimeSource = SYSTEM_TIME,
) -> Requeued:  # fmt: skip
    """Approve a paused task run (`task_ref`: its slug, or SLUG[i] for a mapped child)
    and queue its run for a worker to continue.

    Raises:
        DurableError: no such run, or no such paused task run.
    """

    async def act() -> Requeued:
        full = await resolve_run(store, run_id)
        await record_approval(store, full, task_ref, actor=actor, time=time)
        await store.queue_rerun(
            full, RESUME, now=time.timestamp(), is_live=is_live,
            message=f"{task_ref} approved by {actor or current_user()}",
        )  # fmt: skip
        return Requeued(full, await served(store))

    return await audited(
        store, "approve", f"{run_id} {task_ref}", act(),
        lambda r: "queued for a worker", actor=actor, time=time,
    )  # fmt: skip


async def record_approval(
    store: Store, run_id: str, task_ref: str, *, actor: str | None = None,
    time: TimeSource = SYSTEM_TIME,
) -> TaskRunRecord:  # fmt: skip
    """Record a paused task run's approval (its Resume state); return the task run.

    Raises:
        DurableError: the run has no single task run `task_ref`, or it is not Paused.
    """
    paused = await paused_task_run(store, run_id, task_ref)
    resume = Transition(
        "Resume",
        f"Approved by {actor or current_user()}.",
        time.timestamp(),
        None,
        False,
    )
    store.record_task_state(run_id, paused.id, resume, attempts=paused.attempts)
    await store.flush()
    return paused


async def paused_task_run(store: Store, run_id: str, ref: str) -> TaskRunRecord:
    """Find task run `ref` (a slug, SLUG[i], or a task name) of a run, Paused.

    Raises:
        DurableError: none, several, or it is not Paused (the message lists the paused
            ones).
    """
    slug, _, rest = ref.partition("[")
    index = int(rest.rstrip("]")) if rest.rstrip("]").isdigit() else -1
    task_runs = await store.list_task_runs(run_id)
    found = [t for t in task_runs if t.task_slug == slug and t.map_index == index]
    if not found:  # a task's name, for the one task run of that name
        found = [t for t in task_runs if t.task_name == slug and t.map_index == index]
    names = (
        ", ".join(
            task_ref(t.task_slug, t.map_index) for t in task_runs if t.state == "Paused"
        )
        or "none"
    )
    if len(found) != 1:
        raise DurableError(
            f"Run {run_id!r} has no single task run {ref!r}; paused ones: {names}"
        )
    if found[0].state != "Paused":
        raise DurableError(
            f"Task run {ref!r} of run {run_id!r} is {found[0].state}, not Paused; "
            f"paused ones: {names}"
        )
    return found[0]


def task_slugs(run_id: str, task_runs: Sequence[TaskRunRecord],
               refs: Sequence[str]) -> list[str]:  # fmt: skip
    """The slugs of the tasks `refs` name: each a slug, or a task's name if only one
    task of the run has it.

    Raises:
        DurableError: a ref names no task of the run (the message lists them).
    """
    slugs = {t.task_slug: t.task_name for t in task_runs if t.map_index < 0}
    out = []
    for ref in refs:
        if ref in slugs:
            out.append(ref)
            continue
        named = [slug for slug, name in slugs.items() if name == ref]
        if len(named) != 1:
            raise DurableError(
                f"Run {run_id!r} has no task {ref!r}; its tasks are: "
                + ", ".join(sorted(slugs))
            )
        out.append(named[0])
    return out


def task_ref(slug: str, map_index: int) -> str:
    """How a task run is named on the command line: its slug, or SLUG[i]."""
    return slug if map_index < 0 else f"{slug}[{map_index}]"


async def plan_restart(
    store: Store, run_id: str, from_tasks: Sequence[str] | None = None
) -> RestartPlan:
    """What `restart` would run again and reuse (a dry run; nothing is written).

    Raises:
        DurableError: no such run, a task in `from_tasks` is not one of its tasks, or
            its flow's graph was not recorded (a version stored by an older durable).
    """
    from durable.restarts import plan_restart as plan

    full = await resolve_run(store, run_id)
    stored = await store.list_task_runs(full)
    start = None if from_tasks is None else task_slugs(full, stored, from_tasks)
    graph = await store.run_graph(full)
    if graph is None:
        raise DurableError(
            f"The flow of run {full!r} has no recorded graph (stored by an older "
            f"durable), so no preview; restart it with: durable restart {full}"
        )
    task_runs = [
        _Planned(t.task_slug, t.task_name, t.map_index, t.state) for t in stored
    ]
    edges = [(edge[0], edge[1]) for edge in json.loads(graph)["edges"]]
    return plan(task_runs, edges, from_tasks=start)


class _Planned(NamedTuple):
    slug: str
    name: str
    map_index: int
    state: str


async def pause_schedule(
    store: Store, flow_name: str, *, actor: str | None = None,
    time: TimeSource = SYSTEM_TIME,
) -> int:  # fmt: skip
    """Pause a flow's schedule; return how many waiting ticks were skipped."""

    async def act() -> int:
        await schedulable(store, flow_name)
        return await store.set_paused(flow_name, paused=True, now=time.timestamp())

    return await audited(
        store, "pause", flow_name, act(), lambda n: f"paused, {n} waiting skipped",
        actor=actor, time=time,
    )  # fmt: skip


async def resume_schedule(
    store: Store, flow_name: str, *, actor: str | None = None,
    time: TimeSource = SYSTEM_TIME,
) -> int:  # fmt: skip
    """Resume a paused schedule; return how many ticks missed while paused were
    recorded as Skipped (none of them runs late)."""
    return await audited(
        store, "resume", flow_name, _resume_schedule(store, flow_name, time),
        lambda n: f"resumed, {n} missed skipped", actor=actor, time=time,
    )  # fmt: skip


async def _resume_schedule(store: Store, flow_name: str, time: TimeSource) -> int:
    from durable.store.registry import load_copy
    from durable.worker.ticks import MAX_TICKS, due_events, plan_ticks

    flow = await schedulable(store, flow_name)
    if not flow.paused:
        return 0  # nothing missed while paused: the worker's catchup policy decides
    schedule, now, recorded = load_copy(flow.schedule, flow.source_path), time.now(), 0
    while True:  # a pass records at most MAX_TICKS ticks
        events, _ = due_events(schedule, flow.cursor, now)
        ticks = plan_ticks(flow, events, now=now, catchup="all", late_after=timedelta())
        # Still paused here, so these are recorded as Skipped ("schedule paused").
        recorded += await store.add_scheduled_runs(flow.name, flow.cursor, ticks)
        if len(events) < MAX_TICKS:
            break
        flow = await schedulable(store, flow_name)
    await store.set_paused(flow_name, paused=False, now=now.timestamp())
    return recorded


async def schedulable(store: Store, flow_name: str) -> Any:
    """Return the flow's schedulable record (`SchedulableFlowRecord`).

    Raises:
        DurableError: the flow has no registered schedule.
    """
    for flow in await store.list_schedulable_flows():
        if flow.name == flow_name:
            return flow
    raise DurableError(
        f"Flow {flow_name!r} has no registered schedule; register a flow with a "
        "schedule (durable flows lists them), or use: durable trigger FLOW"
    )
