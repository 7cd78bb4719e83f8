"""The control API: what `durable trigger`, `cancel` and `schedule pause|resume` do, as
async functions on an open store, so the CLI and the terminal UI act the same way.

Each function is one short write transaction (or two) through the store; none runs a flow.
Errors are DurableErrors whose message names the thing and says what to do.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from durable.errors import DurableError, RunNotFoundError
from durable.liveness import Liveness, liveness
from durable.store import Store
from durable.store.control import CancelResult
from durable.store.records import NewScheduledRun
from durable.timesource import SYSTEM_TIME, TimeSource

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


async def trigger(
    store: Store, flow_name: str, parameters: dict[str, Any], *,
    version: int | None = None, time: TimeSource = SYSTEM_TIME,
) -> Triggered:  # fmt: skip
    """Record a run of a registered flow for now; a worker claims and runs it.

    Raises:
        DurableError: the flow (or version) is not registered, or a parameter is
            unknown, missing or invalid.
    """
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
    workers = await store.list_workers()
    served = any(
        w.stopped_at is None and is_live(w.pid, w.pid_started) for w in workers
    )
    return Triggered(run, served)


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
    store: Store, run_id: str, *, time: TimeSource = SYSTEM_TIME
) -> tuple[str, CancelResult]:
    """Cancel a run (a unique prefix of its id works); return its full id and outcome.

    A run nothing runs is Cancelled at once; a running one is asked to stop at its next
    task boundary (see docs/worker.md).
    """
    full = await resolve_run(store, run_id)
    result = await store.request_cancel(
        full, now=time.timestamp(), unfinished=UNFINISHED, is_live=is_live
    )
    return full, result


async def pause_schedule(
    store: Store, flow_name: str, *, time: TimeSource = SYSTEM_TIME
) -> int:
    """Pause a flow's schedule; return how many waiting ticks were skipped."""
    await schedulable(store, flow_name)
    return await store.set_paused(flow_name, paused=True, now=time.timestamp())


async def resume_schedule(
    store: Store, flow_name: str, *, time: TimeSource = SYSTEM_TIME
) -> int:
    """Resume a paused schedule; return how many ticks missed while paused were
    recorded as Skipped (none of them runs late)."""
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
