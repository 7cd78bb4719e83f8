"""Cancelling a running flow run: `durable cancel` records a request in the store; the
run's own process notices it between task runs and stops there.

A task run that has started is let finish (its result is checkpointed as usual): a
synchronous body cannot be interrupted safely from outside its thread. No task run
starts after the request is seen; every one that had not finished becomes Cancelled,
and so does the flow run. The check reads the store at most every `poll` seconds (a
monotonic clock), so it costs nothing on a chain of fast tasks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from durable.engine.plan import RunPlan, TaskRunPlan, is_final
from durable.engine.runner import as_transition
from durable.states import Cancelled
from durable.store import Store
from durable.timesource import TimeSource, monotonic


class CancelWatch:
    """Tells a flow runner whether its run has been asked to stop."""

    def __init__(
        self, store: Store, run_id: str, *, poll: float = 0.5,
        clock: Callable[[], float] = monotonic,
    ) -> None:  # fmt: skip
        self.store, self.run_id = store, run_id
        self.poll = poll
        """Seconds between two reads of the store."""
        self.clock = clock
        self.requested = False
        """Set once a request has been seen; it stays set."""
        self._checked = -math.inf

    async def check(self, *, now: bool = False) -> bool:
        """Return whether the run must stop; read the store if `poll` has passed."""
        if self.requested:
            return True
        at = self.clock()
        if now or at - self._checked >= self.poll:
            self._checked = at
            self.requested = await self.store.is_cancel_requested(self.run_id)
        return self.requested


def cancel_unfinished(plan: RunPlan, store: Store, time: TimeSource) -> int:
    """Move every task run of `plan` that has not finished to Cancelled; return how many."""
    cancelled = 0
    for run in _task_runs(plan):
        if not is_final(run.state):
            state = Cancelled("Cancelled by request (durable cancel).")
            state.stamp(time.timestamp())
            store.record_task_state(
                plan.run_id,
                run.task_run_id,
                as_transition(state),
                attempts=run.attempts,
            )
            run.state = state
            cancelled += 1
    return cancelled


def _task_runs(plan: RunPlan) -> Iterator[TaskRunPlan]:
    for task in plan.tasks.values():
        yield task.run
        yield from task.children or ()
