"""`flow.run()` on a flow with a schedule: wait for each event and run the flow then.

As in Prefect 1, the call blocks until the schedule has no more events; each event is a
new flow run, with the clock's `parameter_defaults` merged over the parameters given to
`flow.run()`. Time is read and waited for through the injected TimeSource. For unattended
schedules that survive restarts, register the flow and run a worker instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any

import anyio

from durable.core.flow import Flow
from durable.engine.flow_runner import run_flow_async
from durable.errors import ConfigurationError
from durable.executors import Executor
from durable.states import State
from durable.store import Store
from durable.store.connection import Durability
from durable.timesource import SYSTEM_TIME, TimeSource

logger = logging.getLogger("durable.FlowRunner")


async def run_on_schedule_async(
    flow: Flow,
    *,
    parameters: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    db: Any = None,
    durability: Durability = "full",
    time: TimeSource = SYSTEM_TIME,
) -> State:
    """Run `flow` at each event of its schedule; return the last run's state."""
    schedule = flow.schedule
    if schedule is None:
        raise ConfigurationError(f"Flow {flow.name!r} has no schedule to run on")
    store = await Store.open(db, durability=durability)
    try:
        state: State | None = None
        after = time.now()
        while events := schedule.next(1, after=after, return_events=True):
            event = events[0]
            logger.info(
                "Flow %r: next scheduled run at %s", flow.name, event.start_time
            )
            await time.sleep_until(event.start_time)
            run_parameters = {**(parameters or {}), **event.parameter_defaults}
            state = await run_flow_async(
                flow, parameters=run_parameters or None, executor=executor,
                store=store, time=time, scheduled_start_time=event.start_time,
            )  # fmt: skip
            after = event.start_time
    finally:
        with anyio.CancelScope(shield=True):
            await store.close()
    if state is None:
        raise ConfigurationError(
            f"The schedule of flow {flow.name!r} has no events after {after}; "
            "nothing was run (check its start and end dates)"
        )
    return state


def run_on_schedule(flow: Flow, **options: Any) -> State:
    """Run `flow` on its schedule from synchronous code; see `run_on_schedule_async`."""
    return anyio.run(partial(run_on_schedule_async, flow, **options))
