"""FlowRunner: starts or resumes a flow run and drives its task runs to the end.

A new run is recorded (with a Pending task run per task) before any task starts. A resumed
run reads its task runs back: finished ones are not run again and their results are read
from the store when a downstream task needs them; runs cut short by a crash run again with
the attempt counted.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio
import pendulum

from durable import context
from durable.core.flow import Flow
from durable.core.task import Task
from durable.engine.executors import Executor, LocalExecutor
from durable.engine.runner import as_transition, call_handlers, record_flow_state
from durable.engine.task_runner import RunEnvironment, TaskRunner
from durable.errors import ConfigurationError, FlowChangedError, ParameterError
from durable.log import configure_console, store_logs
from durable.states import (
    STATE_TYPES,
    Failed,
    Finished,
    LazyResult,
    NoResult,
    Pending,
    Running,
    State,
    Success,
    state_from_record,
)
from durable.store import NewTaskRun, Store
from durable.store.connection import Durability
from durable.store.records import FlowRunRecord, TaskRunRecord
from durable.store.serializers import JSON, PICKLE
from durable.timesource import SYSTEM_TIME, TimeSource

logger = logging.getLogger("durable.FlowRunner")

FINISHED_STATES = frozenset(
    n for n, c in STATE_TYPES.items() if issubclass(c, Finished)
)


_MISSING = object()


def new_run_id() -> str:
    """Return a fresh flow run id: 12 hex digits, short enough to type."""
    return uuid.uuid4().hex[:12]


@dataclass(slots=True)
class TaskRunPlan:
    """One task's run within this flow run, as found or created."""

    task: Task
    slug: str
    task_run_id: str
    attempts: int
    state: State


@dataclass(slots=True)
class RunPlan:
    """A flow run ready to drive: its record state, parameters and task runs."""

    run_id: str
    state: State
    parameters: dict[str, Any]
    created_at: float
    resumed: bool
    tasks: dict[Task, TaskRunPlan] = field(default_factory=dict)


class FlowRunner:
    """Drives one flow run of `flow`, checkpointing every change into `store`."""

    def __init__(
        self, flow: Flow, store: Store, *, executor: Executor | None = None,
        time: TimeSource = SYSTEM_TIME, allow_flow_changes: bool = False,
    ) -> None:  # fmt: skip
        self.flow, self.store, self.time = flow, store, time
        self.executor: Executor = executor or flow.executor or LocalExecutor()
        self.allow_flow_changes = allow_flow_changes
        self.ran: list[str] = []
        """Slugs of the task runs this call ran (or tried to)."""
        self.skipped: list[str] = []
        """Slugs of the task runs that had finished before this call and were not run."""

    async def run(
        self, parameters: Mapping[str, Any] | None = None, run_id: str | None = None
    ) -> State:
        """Start a new run (or resume run `run_id`) and return its final state."""
        self.check_flow_is_runnable()
        plan = await self.initialize_run(parameters, run_id)
        values = self._flow_context(plan)
        with context.flow_context(values), store_logs(plan.run_id, self.store.add_log):
            if plan.resumed and plan.state.is_finished() and self._all_finished(plan):
                logger.info(
                    "Flow run %r already finished (%s)", plan.run_id, plan.state.name
                )
                plan.state.result = self._task_states(plan)
                return plan.state
            state = self.set_running(plan)
            await self.run_tasks(plan)
            state = self.determine_final_state(state, plan)
            if plan.resumed:
                logger.info(
                    "Resumed flow run %r: %d task runs had finished and were not run "
                    "again; %d ran now", plan.run_id, len(self.skipped), len(self.ran),
                )  # fmt: skip
        await self.store.flush()
        return state

    # Steps -----------------------------------------------------------------------------
    def check_flow_is_runnable(self) -> None:
        """Refuse flows this engine cannot run, before anything is recorded."""
        self.flow.validate()
        for edge in self.flow.edges:
            if edge.mapped or edge.flattened:
                raise ConfigurationError(
                    f"Task {edge.downstream.name!r} of flow {self.flow.name!r} is mapped "
                    "or flattened; this version of durable runs unmapped flows only"
                )

    async def initialize_run(
        self, parameters: Mapping[str, Any] | None, run_id: str | None
    ) -> RunPlan:
        """Find the run to resume, or record a new one with a Pending task run per task."""
        record = None if run_id is None else await self.store.find_flow_run(run_id)
        if record is not None:
            return await self._resume(record, parameters)
        params = self.flow.validate_parameters(dict(parameters or {}))
        plan = RunPlan(
            run_id=run_id or new_run_id(),
            state=Pending("Flow run created."),
            parameters=params,
            created_at=self.time.timestamp(),
            resumed=False,
        )
        plan.state.stamp(plan.created_at)
        for task in self.flow.sorted_tasks():
            slug = self.flow.slugs[task]
            plan.tasks[task] = TaskRunPlan(task, slug, uuid.uuid4().hex, 0, Pending())
        blob, serializer = _dump_parameters(params)
        self.store.create_flow_run(
            run_id=plan.run_id,
            flow_name=self.flow.name,
            fingerprint=self.flow.fingerprint(),
            source_path=self.flow.source_path,
            parameters=blob,
            parameters_serializer=serializer,
            transition=as_transition(plan.state),
            task_runs=[
                NewTaskRun(p.task_run_id, p.slug, p.task.name)
                for p in plan.tasks.values()
            ],
        )
        await (
            self.store.flush()
        )  # the run exists (and is resumable) before any task runs
        logger.info("Beginning flow run %r for flow %r", plan.run_id, self.flow.name)
        return plan

    def set_running(self, plan: RunPlan) -> State:
        """Move the flow run to Running."""
        if plan.resumed:
            done = sum(1 for p in plan.tasks.values() if p.state.is_finished())
            message = (
                f"Resumed: {done} of {len(plan.tasks)} task runs already finished."
            )
        else:
            message = "Running flow."
        return self.transition(plan, plan.state, Running(message))

    async def run_tasks(self, plan: RunPlan) -> None:
        """Run every unfinished task run once its upstream tasks have finished."""
        if self.executor.max_workers == 1:
            for task, entry in plan.tasks.items():
                await self._run_task(plan, task, entry)
            return
        done = {task: anyio.Event() for task in plan.tasks}
        slots = anyio.Semaphore(self.executor.max_workers)

        async def run_when_ready(task: Task, entry: TaskRunPlan) -> None:
            for upstream in self.flow.upstream_tasks(task):
                await done[upstream].wait()
            async with slots:
                await self._run_task(plan, task, entry)
            done[task].set()

        async with anyio.create_task_group() as group:
            for task, entry in plan.tasks.items():
                group.start_soon(run_when_ready, task, entry)

    def determine_final_state(self, state: State, plan: RunPlan) -> State:
        """Decide the flow run's state from its reference tasks (Prefect 1's rule)."""
        states = self._task_states(plan)
        if not all(states[t].is_finished() for t in self.flow.terminal_tasks()):
            state.result = states
            return state
        reference = {t: states[t] for t in self.flow.reference_tasks()}
        new: State
        if any(s.is_failed() for s in reference.values()):
            new = Failed("Some reference tasks failed.")
        elif all(s.is_successful() for s in reference.values()):
            new = Success("All reference tasks succeeded.")
        else:
            new = Success("No reference tasks failed.")
        new.result = states
        if self.flow.terminal_state_handler is not None:
            replaced = self.flow.terminal_state_handler(self.flow, new, reference)
            if replaced is not None:
                new = replaced
        final = self.transition(plan, state, new)
        if final.result is NoResult or not isinstance(final.result, dict):
            final.result = states
        level = logging.ERROR if final.is_failed() else logging.INFO
        logger.log(level, "Flow run %s: %s", final.name.upper(), final.message)
        return final

    def transition(self, plan: RunPlan, old: State, new: State) -> State:
        """Run the flow's handlers, stamp the state and queue its checkpoint."""
        if self.flow.state_handlers:
            new = call_handlers(self.flow, self.flow.state_handlers, old, new, logger)
        new.stamp(self.time.timestamp())
        record_flow_state(self.store, plan.run_id, new)
        plan.state = new
        return new

    # Helpers ---------------------------------------------------------------------------
    async def _run_task(self, plan: RunPlan, task: Task, entry: TaskRunPlan) -> None:
        if entry.state.is_finished():
            self.skipped.append(entry.slug)
            logger.debug("Task %r: finished before (%s); not run again", task.name,
                         entry.state.name)  # fmt: skip
            return
        env = RunEnvironment(plan.run_id, self.store, self.time, self.executor)
        runner = TaskRunner(task, entry.slug, entry.task_run_id, entry.attempts, env)
        upstream = [(e, plan.tasks[e.upstream].state) for e in self.flow.edges_to(task)]
        constants = self.flow.constants.get(task, {})
        self.ran.append(entry.slug)
        entry.state = await runner.run(entry.state, upstream, constants)
        entry.attempts = runner.attempts
        await self.store.throttle()

    async def _resume(
        self, record: FlowRunRecord, parameters: Mapping[str, Any] | None
    ) -> RunPlan:
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
        found = {r.task_slug: r for r in await self.store.list_task_runs(record.id)
                 if r.map_index == -1}  # fmt: skip
        added: list[NewTaskRun] = []
        for task in flow.sorted_tasks():
            slug = flow.slugs[task]
            task_run = found.get(slug)
            if task_run is None:
                added.append(NewTaskRun(uuid.uuid4().hex, slug, task.name))
                plan.tasks[task] = TaskRunPlan(task, slug, added[-1].id, 0, Pending())
                continue
            plan.tasks[task] = TaskRunPlan(
                task, slug, task_run.id, task_run.attempts, self._stored_state(task_run)
            )
        if added:
            self.store.add_task_runs(record.id, added, self.time.timestamp())
        self._rerun_unstored_results(plan)
        return plan

    def _stored_state(self, task_run: TaskRunRecord) -> State:
        if task_run.state not in FINISHED_STATES:
            if task_run.state != "Pending":
                logger.info(
                    "Task %r was %s when its run stopped; it will run again",
                    task_run.task_name, task_run.state,
                )  # fmt: skip
            return Pending(f"Interrupted while {task_run.state}.")
        result: Any = NoResult
        if task_run.has_result:
            result = LazyResult(partial(self.store.load_result, task_run.id))
        return state_from_record(
            task_run.state, task_run.state_message, task_run.updated_at, None, result
        )

    def _rerun_unstored_results(self, plan: RunPlan) -> None:
        # A success whose result was not checkpointed must run again when a task that
        # has not finished needs its value.
        for task, entry in plan.tasks.items():
            state = entry.state
            if (
                not state.is_successful()
                or state.has_result
                or task.checkpoint is not False
            ):
                continue
            if any(
                e.key is not None and not plan.tasks[e.downstream].state.is_finished()
                for e in self.flow.edges_from(task)
            ):
                entry.state = Pending("Result was not checkpointed; running again.")

    def _all_finished(self, plan: RunPlan) -> bool:
        return all(p.state.is_finished() for p in plan.tasks.values())

    def _task_states(self, plan: RunPlan) -> dict[Task, State]:
        return {
            task: entry.state if entry.state.is_finished() else Pending("Task not run.")
            for task, entry in plan.tasks.items()
        }

    def _flow_context(self, plan: RunPlan) -> dict[str, Any]:
        now = self.time.now()
        days = {
            "today": now,
            "yesterday": now.subtract(days=1),
            "tomorrow": now.add(days=1),
        }
        values: dict[str, Any] = {
            "flow_name": self.flow.name,
            "flow_run_id": plan.run_id,
            "parameters": plan.parameters,
            "scheduled_start_time": pendulum.from_timestamp(plan.created_at, tz="UTC"),
            "date": now,
        }
        for key, day in days.items():
            values[key] = day.to_date_string()
            values[f"{key}_nodash"] = day.format("YYYYMMDD")
        return values


def _dump_parameters(params: dict[str, Any]) -> tuple[bytes, str]:
    # Parameters are stored readable (JSON) when they can be, pickled otherwise.
    try:
        return JSON.dumps(params), JSON.name
    except (TypeError, ValueError):
        return PICKLE.dumps(params), PICKLE.name


async def run_flow_async(
    flow: Flow,
    *,
    parameters: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    executor: Executor | None = None,
    db: Any = None,
    store: Store | None = None,
    allow_flow_changes: bool = False,
    durability: Durability = "full",
    time: TimeSource = SYSTEM_TIME,
) -> State:
    """Run (or resume) `flow` on the async engine and return its final state.

    Pass `store` to use an open store (it stays open), or `db` for a database path
    (default: `$DURABLE_DB`, else `$DURABLE_HOME/durable.db`).
    """
    configure_console()
    own = store is None
    store = store or await Store.open(db, durability=durability)
    try:
        runner = FlowRunner(
            flow, store, executor=executor, time=time,
            allow_flow_changes=allow_flow_changes,
        )  # fmt: skip
        return await runner.run(parameters, run_id)
    finally:
        if own:
            with anyio.CancelScope(shield=True):
                await store.close()


def run_flow(flow: Flow, **options: Any) -> State:
    """Run (or resume) `flow` to the end from synchronous code; see `run_flow_async`."""
    return anyio.run(partial(run_flow_async, flow, **options))
