"""FlowRunner: starts or resumes a flow run and drives its task runs to the end.

A new run is recorded (with a Pending task run per task) before any task starts. A resumed
run reads its task runs back: finished ones are not run again and their results are read
from the store when a downstream task needs them; runs cut short by a crash run again with
the attempt counted. Task runs are started from a ready queue ordered by (map index, place
in the flow), so an unmapped flow runs in its topological order and a map of a map runs
child by child.
"""

from __future__ import annotations

import heapq
import logging
import uuid
from collections.abc import Collection, Mapping
from functools import partial
from typing import Any

import anyio
import pendulum
from pendulum import DateTime

from durable import context
from durable.core.flow import Flow
from durable.core.identity import shape
from durable.core.secret import check_secrets
from durable.engine.cancel import CancelWatch, cancel_unfinished
from durable.engine.mapping import (
    blocked_map,
    map_sources,
    pairs_child_by_child,
    upstream_of_child,
    upstream_of_task,
)
from durable.engine.plan import (
    RunPlan,
    TaskPlan,
    TaskRunPlan,
    is_final,
    new_task_run_id,
)
from durable.engine.resume import RunLoader
from durable.engine.runner import as_transition, call_handlers, record_flow_state
from durable.engine.task_runner import RunEnvironment, TaskRunner
from durable.errors import ParameterError, RunNotFoundError
from durable.executors import Executor, LocalExecutor
from durable.log import configure_console, store_logs
from durable.states import (
    Cancelled,
    Failed,
    Mapped,
    Paused,
    Pending,
    Running,
    State,
    Success,
)
from durable.store import NewTaskRun, Store
from durable.store.connection import Durability
from durable.store.serializers import JSON, PICKLE
from durable.timesource import SYSTEM_TIME, TimeSource

logger = logging.getLogger("durable.FlowRunner")

Unit = tuple[int, int]
"""(map index, place in the flow): a task run to start; -1 for a task's own run."""


def new_run_id() -> str:
    """Return a fresh flow run id: 12 hex digits, short enough to type."""
    return uuid.uuid4().hex[:12]


class FlowRunner:
    """Drives one flow run of `flow`, checkpointing every change into `store`."""

    def __init__(
        self, flow: Flow, store: Store, *, executor: Executor | None = None,
        time: TimeSource = SYSTEM_TIME, allow_flow_changes: bool = False,
        scheduled_start_time: DateTime | None = None,
        restart: bool | str | Collection[str] = False,
    ) -> None:  # fmt: skip
        self.flow, self.store, self.time = flow, store, time
        self.restart = bool(restart)
        """Whether to run failed task runs (or `restart_from`) and what depends on them
        again."""
        self.restart_from: Collection[str] | None = (
            None if isinstance(restart, bool) else
            {restart} if isinstance(restart, str) else set(restart)
        )  # fmt: skip
        """The task slugs a restart starts from (None: the failed ones)."""
        self.scheduled_start_time = scheduled_start_time
        """When the run was scheduled to start (a schedule's event), if it was."""
        self.executor: Executor = executor or flow.executor or LocalExecutor()
        self._limited: frozenset[str] = frozenset()  # tags of this flow with a limit
        self.allow_flow_changes = allow_flow_changes
        self.ran = 0
        """How many task runs this call ran (or tried to)."""
        self.skipped = 0
        """How many task runs had finished before this call and were not run."""
        self._order: list[TaskPlan] = []
        self._mapped = {edge.downstream for edge in flow.edges if edge.mapped}
        self._loader = RunLoader(flow, store, time, allow_flow_changes, self._mapped)
        self.cancel_poll = 0.5
        """Seconds between two checks for a `durable cancel` request (see CancelWatch)."""
        self._watch: CancelWatch | None = None
        self._env: RunEnvironment | None = None

    async def run(
        self, parameters: Mapping[str, Any] | None = None, run_id: str | None = None
    ) -> State:
        """Start a new run (or resume run `run_id`) and return its final state."""
        self.flow.validate()
        # Secrets are never stored: each run, resumed ones too, fetches them first.
        check_secrets(self.flow.name, self.flow.sorted_tasks())
        plan = await self.initialize_run(parameters, run_id)
        self._order = list(plan.tasks.values())
        for task in self._order:
            task.inbound = tuple((e, plan.tasks[e.upstream]) for e in
                                 self.flow.edges_to(task.task))  # fmt: skip
            task.downstream = tuple(plan.tasks[d] for d in
                                    self.flow.downstream_tasks(task.task))  # fmt: skip
        values = self._flow_context(plan)
        with context.flow_context(values), store_logs(plan.run_id, self.store.add_log):
            finished = all(is_final(t.run.state) for t in plan.tasks.values())
            if plan.resumed and plan.state.is_finished() and finished:
                logger.info("Flow run %r already finished (%s)", plan.run_id,
                            plan.state.name)  # fmt: skip
                plan.state.result = self._task_states(plan)
                return plan.state
            tags = {tag for t in self._order for tag in t.task.tags}
            if tags:  # untagged flows never read the limits
                limits = await self.store.list_limits()
                self._limited = frozenset(lim.tag for lim in limits) & tags
            self._watch = CancelWatch(self.store, plan.run_id, poll=self.cancel_poll)
            state = self.set_running(plan)
            if not await self._watch.check(now=True):
                # The executor's pool or cluster lives for the run's task runs only.
                async with self.executor.start():
                    await self.run_tasks(plan)
            if self._watch.requested:
                state = self.cancel(plan, state)
            else:
                state = self.determine_final_state(state, plan)
            if plan.resumed:
                logger.info(
                    "Resumed flow run %r: %d task runs had finished and were not run "
                    "again; %d ran now", plan.run_id, self.skipped, self.ran,
                )  # fmt: skip
        await self.store.flush()
        return state

    # Steps -----------------------------------------------------------------------------
    async def initialize_run(
        self, parameters: Mapping[str, Any] | None, run_id: str | None
    ) -> RunPlan:
        """Find the run to resume, or record a new one with a Pending task run per task."""
        record = None if run_id is None else await self.store.find_flow_run(run_id)
        if record is not None:
            plan = await self._loader.load(record, parameters)
            if self.restart:
                count = self._loader.restart(plan, self.restart_from)
                # A restart a worker was asked for is done once these resets are:
                # ordered commits keep the request until they are durable.
                self.store.consume_rerun(plan.run_id)
                logger.info("Restarting flow run %r: %d task runs will run again",
                            plan.run_id, count)  # fmt: skip
            return plan
        if self.restart:
            raise RunNotFoundError(run_id or "", detail="nothing to restart")
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
            run = TaskRunPlan(new_task_run_id(plan.created_at), 0, Pending())
            plan.add(task, self.flow.slugs[task], task in self._mapped, run)
        blob, serializer = _dump_parameters(params)
        if len(blob) > self.store.max_value_bytes:
            raise ParameterError(
                f"The parameters of flow {self.flow.name!r} take {len(blob):,} bytes "
                f"stored, more than one database row holds "
                f"({self.store.max_value_bytes:,}); pass a path or a reference to "
                "the data instead"
            )
        self.store.create_flow_run(
            run_id=plan.run_id,
            flow_name=self.flow.name,
            fingerprint=self.flow.fingerprint(),
            source_path=self.flow.source_path,
            parameters=blob,
            parameters_serializer=serializer,
            transition=as_transition(plan.state),
            task_runs=[
                NewTaskRun(t.run.task_run_id, t.slug, t.task.name)
                for t in plan.tasks.values()
            ],
            graph=partial(shape, self.flow),
        )
        await (
            self.store.flush()
        )  # the run exists (and is resumable) before any task runs
        logger.info("Beginning flow run %r for flow %r", plan.run_id, self.flow.name)
        return plan

    def set_running(self, plan: RunPlan) -> State:
        """Move the flow run to Running."""
        if plan.resumed:
            done = sum(1 for t in plan.tasks.values() if is_final(t.run.state))
            message = f"Resumed: {done} of {len(plan.tasks)} tasks already finished."
        else:
            message = "Running flow."
        return self.transition(plan, plan.state, Running(message))

    async def run_tasks(self, plan: RunPlan) -> None:
        """Run every task run once what it waits for has finished."""
        ready: list[Unit] = []
        started: set[Unit] = set()
        for task in self._order:
            if not task.mapped and is_final(task.run.state):
                # Finished before this run (a resume): nothing to start, nothing to wait.
                self.skipped += 1
                started.add((-1, task.order))
            elif self._is_ready(plan, task, -1):
                ready.append((-1, task.order))
        heapq.heapify(ready)
        if self.executor.max_workers == 1:
            while ready and not await self._stopping():
                unit = heapq.heappop(ready)
                if unit not in started:
                    started.add(unit)
                    await self._run_unit(plan, unit)
                    self._push_ready(plan, unit, ready, started)
            return
        await self._run_concurrently(plan, ready, started)

    def determine_final_state(self, state: State, plan: RunPlan) -> State:
        """Decide the flow run's state from its reference tasks (Prefect 1's rule)."""
        states = self._task_states(plan)
        waiting = [ref for t in plan.tasks.values() for ref in t.waiting_for_approval()]
        new: State
        if waiting:
            new = Paused(
                f"Waiting for approval of {', '.join(waiting)}.",
                context={"waiting": waiting},
            )
        elif not all(plan.tasks[t].is_complete for t in self.flow.terminal_tasks()):
            state.result = states
            return state
        else:
            new = self._reference_outcome(plan)
        new.result = states
        if self.flow.terminal_state_handler is not None and new.is_finished():
            reference = {t: states[t] for t in self.flow.reference_tasks()}
            replaced = self.flow.terminal_state_handler(self.flow, new, reference)
            if replaced is not None:
                new = replaced
        final = self.transition(plan, state, new)
        if not isinstance(final.result, dict):
            final.result = states
        level = logging.ERROR if final.is_failed() else logging.INFO
        logger.log(level, "Flow run %s: %s", final.name.upper(), final.message)
        return final

    def cancel(self, plan: RunPlan, state: State) -> State:
        """End a run asked to stop: unfinished task runs and the flow run Cancelled."""
        count = cancel_unfinished(plan, self.store, self.time)
        new = Cancelled(f"Cancelled by request (durable cancel); {count} task runs "
                        "had not finished.")  # fmt: skip
        new.result = self._task_states(plan)
        final = self.transition(plan, state, new)
        logger.warning("Flow run %s: CANCELLED: %s", plan.run_id, final.message)
        return final

    async def _stopping(self) -> bool:
        return self._watch is not None and await self._watch.check()

    def transition(self, plan: RunPlan, old: State, new: State) -> State:
        """Run the flow's handlers, stamp the state and queue its checkpoint."""
        if self.flow.state_handlers:
            new = call_handlers(self.flow, self.flow.state_handlers, old, new, logger)
        new.stamp(self.time.timestamp())
        record_flow_state(self.store, plan.run_id, new)
        plan.state = new
        return new

    # The ready queue --------------------------------------------------------------------
    def _is_ready(self, plan: RunPlan, task: TaskPlan, index: int) -> bool:
        if not task.mapped:
            return all(upstream.is_complete for _, upstream in task.inbound)
        if index >= 0:  # a child waits for the children it is paired with
            return all(
                is_final((upstream.children or [])[index].state)
                for e, upstream in task.inbound
                if pairs_child_by_child(plan, e)
            )
        if task.children is not None or task.is_complete:
            return False  # mapped already, or ended without mapping
        return all(
            upstream.children is not None
            if pairs_child_by_child(plan, e)
            else upstream.is_complete
            for e, upstream in task.inbound
        )

    def _push_ready(
        self, plan: RunPlan, unit: Unit, ready: list[Unit], started: set[Unit]
    ) -> None:
        index, order = unit
        task = self._order[order]
        candidates: list[Unit] = []
        downstream = task.downstream
        if task.mapped and index == -1 and task.children is not None:
            candidates += [(i, order) for i in range(len(task.children))]
        if index >= 0 or task.mapped:
            candidates += [
                (i, d.order)
                for d in downstream
                if d.mapped and d.children is not None
                for i in ([index] if index >= 0 else range(len(d.children)))
                if i < len(d.children)
            ]
        candidates += [(-1, d.order) for d in downstream]
        for candidate in candidates:
            i, o = candidate
            if candidate not in started and self._is_ready(plan, self._order[o], i):
                heapq.heappush(ready, candidate)

    async def _run_concurrently(
        self, plan: RunPlan, ready: list[Unit], started: set[Unit]
    ) -> None:
        send, receive = anyio.create_memory_object_stream[Unit](len(self._order) + 1)
        running = 0

        async def run_and_report(unit: Unit) -> None:
            await self._run_unit(plan, unit)
            await send.send(unit)

        async with anyio.create_task_group() as group, send, receive:
            while True:
                while (ready and running < self.executor.max_workers
                       and not await self._stopping()):  # fmt: skip
                    unit = heapq.heappop(ready)
                    if unit not in started:
                        started.add(unit)
                        running += 1
                        group.start_soon(run_and_report, unit)
                if not running:
                    return
                finished = await receive.receive()
                running -= 1
                self._push_ready(plan, finished, ready, started)

    async def _run_unit(self, plan: RunPlan, unit: Unit) -> None:
        index, order = unit
        task = self._order[order]
        if index >= 0:
            child = (task.children or [])[index]
            if is_final(child.state):  # finished before this run: counted already
                self.skipped += 1
                return
            upstream = upstream_of_child(plan, self.flow, task, index)
            await self._run_task_run(plan, task, child, upstream)
            if is_final(child.state):
                task.child_finished()
        elif task.mapped:
            self._map(plan, task)
        else:
            upstream = upstream_of_task(plan, task)
            await self._run_task_run(plan, task, task.run, upstream)

    async def _run_task_run(
        self, plan: RunPlan, task: TaskPlan, run: TaskRunPlan,
        upstream: list[tuple[Any, State]],
    ) -> None:  # fmt: skip
        if is_final(run.state):
            self.skipped += 1
            return
        runner = self._runner(plan, task, run)
        self.ran += 1
        constants = self.flow.constants.get(task.task, {})
        run.state = await runner.run(run.state, upstream, constants)
        run.attempts = runner.attempts
        await self.store.throttle()

    def _map(self, plan: RunPlan, task: TaskPlan) -> None:
        """Create a mapped task's children (or end it when it cannot map)."""
        parent = self._runner(plan, task, task.run)
        restored = isinstance(task.run.state, Mapped)
        if not restored:
            ended = blocked_map(plan, self.flow, task)
            if ended is not None:
                task.run.state = parent.transition(task.run.state, ended)
                task.children = []
                return
        width = map_sources(plan, self.flow, task)
        if isinstance(width, State):
            task.run.state = parent.transition(task.run.state, width)
            task.children = []
            return
        if not restored:
            mapped = Mapped(f"Mapped into {width} children.")
            task.run.state = parent.transition(task.run.state, mapped)
        task.children = self._children(plan, task, width)
        task.unfinished = sum(1 for c in task.children if not is_final(c.state))
        if not task.unfinished:
            task.gather_children()

    def _children(self, plan: RunPlan, task: TaskPlan, width: int) -> list[TaskRunPlan]:
        children, created, now = [], list[NewTaskRun](), self.time.timestamp()
        for index in range(width):
            stored = plan.stored_children.get((task.slug, index))
            if stored is not None:
                restarted = task.slug in plan.restarted_maps or (
                    (task.slug, index) in plan.restarted_children
                )
                state = (
                    Pending("Restarted from failed.")
                    if restarted
                    else self._loader.stored_state(plan, stored)
                )
                children.append(TaskRunPlan(stored.id, stored.attempts, state, index))
                continue
            created.append(
                NewTaskRun(new_task_run_id(now), task.slug, task.task.name, index)
            )
            children.append(TaskRunPlan(created[-1].id, 0, Pending(), index))
        if created:
            self.store.add_task_runs(plan.run_id, created, now)
        return children

    def _runner(self, plan: RunPlan, task: TaskPlan, run: TaskRunPlan) -> TaskRunner:
        env = self._env  # shared by the run's task runs: made once, not per task run
        if (
            env is None
            or env.run_id != plan.run_id
            or env.limited_tags != self._limited
        ):
            env = self._env = RunEnvironment(
                plan.run_id, self.store, self.time, self.executor, self._limited
            )
        return TaskRunner(
            task.task, task.slug, run.task_run_id, run.attempts, env, run.map_index
        )

    # Resume ------------------------------------------------------------------------------
    # Helpers ---------------------------------------------------------------------------
    def _reference_outcome(self, plan: RunPlan) -> State:
        reference = [
            state
            for task in self.flow.reference_tasks()
            for state in _outcomes(plan.tasks[task])
        ]
        if any(s.is_failed() for s in reference):
            return Failed("Some reference tasks failed.")
        if all(s.is_successful() for s in reference):
            return Success("All reference tasks succeeded.")
        return Success("No reference tasks failed.")

    def _task_states(self, plan: RunPlan) -> dict[Any, State]:
        return {
            task: t.run.state
            if not isinstance(t.run.state, Pending) or t.waiting_for_approval()
            else Pending("Task not run.")
            for task, t in plan.tasks.items()
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
            "scheduled_start_time": self.scheduled_start_time
            or pendulum.from_timestamp(plan.created_at, tz="UTC"),
            "date": now,
        }
        for key, day in days.items():
            values[key] = day.to_date_string()
            values[f"{key}_nodash"] = day.format("YYYYMMDD")
        return values


def _outcomes(task: TaskPlan) -> list[State]:
    # A mapped task's outcome is its children's (a failed child fails a reference task).
    if isinstance(task.run.state, Mapped) and task.children:
        return [child.state for child in task.children]
    return [task.run.state]


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
    scheduled_start_time: DateTime | None = None,
    restart: bool | str | Collection[str] = False,
) -> State:
    """Run (or resume, or restart) `flow` on the async engine; return its final state.

    `restart=True` resumes run `run_id` and also runs its failed task runs (and every task
    downstream of them) again; `restart=["slug", ...]` runs those tasks and everything
    downstream of them again instead (see `durable.restarts`).

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
            scheduled_start_time=scheduled_start_time, restart=restart,
        )  # fmt: skip
        return await runner.run(parameters, run_id)
    finally:
        if own:
            with anyio.CancelScope(shield=True):
                await store.close()


def run_flow(flow: Flow, **options: Any) -> State:
    """Run (or resume) `flow` to the end from synchronous code; see `run_flow_async`."""
    return anyio.run(partial(run_flow_async, flow, **options))
