"""Resume: read a stored flow run back into a plan the FlowRunner drives on.

Finished task runs keep their state (results load lazily from the store when a downstream
task needs them); runs cut short by a crash start over with their attempts counted, or,
inside a LOOP, continue after the last finished round; paused ones stay paused until
approved; tasks the flow has gained since (with `allow_flow_changes`) start Pending.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from functools import partial
from typing import Any, NamedTuple

from durable.core.flow import Flow
from durable.engine.plan import RunPlan, TaskRunPlan, is_final, new_task_run_id
from durable.errors import ConfigurationError, FlowChangedError, ParameterError
from durable.restarts import plan_restart
from durable.states import (
    STATE_TYPES,
    Finished,
    LazyResult,
    NoResult,
    Paused,
    Pending,
    State,
    state_from_record,
)
from durable.store import NewTaskRun, Store
from durable.store.records import FlowRunRecord, TaskRunRecord, Transition
from durable.timesource import TimeSource

logger = logging.getLogger("durable.FlowRunner")

KEPT_STATES = frozenset(
    name for name, cls in STATE_TYPES.items() if issubclass(cls, Finished | Paused)
)
"""Stored states a resumed task run keeps (the others were cut short and run again)."""
_MISSING = object()


class RunLoader:
    """Reads a stored flow run back, for the flow that started it."""

    def __init__(
        self, flow: Flow, store: Store, time: TimeSource, allow_flow_changes: bool,
        mapped: set[Any],
    ) -> None:  # fmt: skip
        self.flow, self.store, self.time = flow, store, time
        self.allow_flow_changes = allow_flow_changes
        self.mapped = mapped
        """The flow's mapped tasks."""

    async def load(
        self, record: FlowRunRecord, parameters: Mapping[str, Any] | None
    ) -> RunPlan:
        """Check the run may resume with this flow, and read its task runs back."""
        flow = self.flow
        if record.flow_name != flow.name:
            raise ConfigurationError(
                f"Run {record.id!r} belongs to flow {record.flow_name!r}, "
                f"not {flow.name!r}; resume it with the flow that started it"
            )
        if record.fingerprint != flow.fingerprint() and not self.allow_flow_changes:
            raise FlowChangedError(run_id=record.id, flow_name=flow.name)
        stored = await self.store.load_parameters(record.id)
        if any(stored.get(k, _MISSING) != v for k, v in (parameters or {}).items()):
            raise ParameterError(
                f"Run {record.id!r} was started with parameters {stored!r}; "
                "a resumed run keeps them: resume without parameters, or start a new run"
            )
        logger.info("Resuming flow run %r of flow %r", record.id, flow.name)
        state = state_from_record(
            record.state, record.state_message, record.updated_at, None
        )
        plan = RunPlan(record.id, state, stored, record.created_at, resumed=True)
        task_runs = await self.store.list_task_runs(record.id)
        found = {r.task_slug: r for r in task_runs if r.map_index == -1}
        plan.stored_children = {
            (r.task_slug, r.map_index): r for r in task_runs if r.map_index >= 0
        }
        with_details = [r.id for r in task_runs if r.state in ("Looped", "Paused",
                                                                "Retrying")]  # fmt: skip
        plan.stored_details = await self.store.latest_details(with_details)
        running = [r.id for r in task_runs if r.state == "Running"]
        plan.stored_loops = await self.store.latest_details(running, name="Looped")
        added, now = list[NewTaskRun](), self.time.timestamp()
        for task in flow.sorted_tasks():
            slug = flow.slugs[task]
            task_run = found.get(slug)
            if task_run is None:
                added.append(NewTaskRun(new_task_run_id(now), slug, task.name))
                plan.add(
                    task,
                    slug,
                    task in self.mapped,
                    TaskRunPlan(added[-1].id, 0, Pending()),
                )
                continue
            state = self.stored_state(plan, task_run)
            run = TaskRunPlan(task_run.id, task_run.attempts, state)
            plan.add(task, slug, task in self.mapped, run)
        if added:
            self.store.add_task_runs(record.id, added, now)
        self.rerun_unstored_results(plan)
        return plan

    def stored_state(self, plan: RunPlan, task_run: TaskRunRecord) -> State:
        """The state a stored task run resumes from (runs cut short start over)."""
        name = task_run.state
        stored = LazyResult(partial(self.store.load_result, task_run.id))
        loop = plan.stored_loops.get(task_run.id) if plan.stored_loops else None
        if loop is not None:  # cut short inside a loop: continue from its last round
            logger.info("Task %r was cut short in a loop; it continues after round %s",
                        task_run.task_name, loop.get("loop_count"))  # fmt: skip
            return state_from_record("Looped", None, task_run.updated_at, loop, stored)
        if name not in KEPT_STATES and name not in ("Retrying", "Resume"):
            if name != "Pending":
                logger.info("Task %r was %s when its run stopped; it will run again",
                            task_run.task_name, name)  # fmt: skip
            return Pending(f"Interrupted while {name}.")
        result: Any = stored if task_run.has_result else NoResult
        details = plan.stored_details.get(task_run.id)
        return state_from_record(
            name, task_run.state_message, task_run.updated_at, details, result
        )

    def rerun_unstored_results(self, plan: RunPlan) -> None:
        """Run again the successes without a stored result that a pending task needs."""
        # A success whose result was not checkpointed must run again when a task that
        # has not finished needs its value.
        for task in plan.tasks.values():
            state = task.run.state
            if not state.is_successful() or state.has_result or task.mapped:
                continue
            if task.task.checkpoint is not False:
                continue
            if any(
                e.key is not None and not is_final(plan.tasks[e.downstream].run.state)
                for e in self.flow.edges_from(task.task)
            ):
                task.run.state = Pending("Result was not checkpointed; running again.")

    def restart(self, plan: RunPlan, from_tasks: Collection[str] | None = None) -> int:
        """Reset what `durable.restarts.plan_restart` plans to Pending: failed task runs
        (or `from_tasks`) and every task downstream of them.

        Successes upstream stay (their results are reused); a mapped task whose children
        failed runs only those children again, one downstream of a reset runs all of them.
        Each reset is recorded as a Pending transition. Returns how many task runs were
        reset.
        """
        flow = self.flow
        planned = plan_restart(
            [_Planned(t.slug, t.task.name, -1, t.run.state.name) for t in plan.tasks.values()]
            + [_Planned(s, r.task_name, i, r.state) for (s, i), r in plan.stored_children.items()],
            [(flow.slugs[e.upstream], flow.slugs[e.downstream]) for e in flow.edges],
            from_tasks=from_tasks,
        )  # fmt: skip
        by_slug = {t.slug: t for t in plan.tasks.values()}
        whole = {
            s for s in (*planned.downstream, *(from_tasks or ())) if by_slug[s].mapped
        }
        plan.restarted_maps |= whole
        now = self.time.timestamp()
        for item in planned.reset:
            message = "Restarted from failed." if from_tasks is None else "Restarted."
            pending = Transition("Pending", message, now, None, False)
            if item.map_index < 0:
                run: TaskRunPlan | TaskRunRecord = by_slug[item.slug].run
            else:
                run = plan.stored_children[(item.slug, item.map_index)]
                if item.slug not in whole:
                    plan.restarted_children.add((item.slug, item.map_index))
            task_run_id = run.id if isinstance(run, TaskRunRecord) else run.task_run_id
            self.store.record_task_state(plan.run_id, task_run_id, pending,
                                         attempts=run.attempts)  # fmt: skip
            if isinstance(run, TaskRunPlan):
                run.state = Pending(message)
        return len(planned.reset)


class _Planned(NamedTuple):
    slug: str
    name: str
    map_index: int
    state: str
