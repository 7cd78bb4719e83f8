"""The bookkeeping of one flow run: each task's run, and a mapped task's children."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from typing import Any

from durable.core.edge import Edge
from durable.core.task import Task
from durable.engine.task_runner import is_waiting_for_approval
from durable.states import LazyResult, Looped, Mapped, State
from durable.store.records import TaskRunRecord

_sequence = itertools.count(int.from_bytes(os.urandom(4)) >> 1)  # wraps after 2**31


def new_task_run_id(now: float) -> str:
    """Return a fresh task run id: 32 hex digits that sort in creation order.

    Laid out like a UUIDv7: milliseconds since the epoch (12 digits), a counter of this
    process (8), random bits (12). Ids made later sort later, so a run's task runs,
    states and results are added at the end of their indexes instead of on random
    pages, and each group commit writes fewer pages (bench/README.md, "Where the time
    goes"). The counter keeps the ids of one burst (a map's children) in order; the
    random bits keep processes apart.
    """
    sequence = next(_sequence) & 0xFFFFFFFF
    return f"{int(now * 1000):012x}{sequence:08x}{os.urandom(6).hex()}"


@dataclass(slots=True)
class TaskRunPlan:
    """One task run (a task's own, or a mapped child's), as found or created."""

    task_run_id: str
    attempts: int
    state: State
    map_index: int = -1


@dataclass(slots=True)
class TaskPlan:
    """One task of the flow: its run and, when mapped, its children."""

    task: Task
    slug: str
    order: int
    """The task's position in the flow's topological order."""
    mapped: bool
    """Whether an edge into the task is mapped (it runs once per item)."""
    run: TaskRunPlan
    """The task's own run: for a mapped task, the parent whose state is Mapped."""
    children: list[TaskRunPlan] | None = None
    """A mapped task's children, once created (None before)."""
    sources: dict[Edge, Any] = field(default_factory=dict)
    """The values a mapped task maps over, by edge (edges from unmapped upstreams)."""
    unfinished: int = 0
    """Children not finished yet."""
    inbound: tuple[tuple[Edge, TaskPlan], ...] = ()
    """The edges into the task, each with its upstream task's plan."""
    downstream: tuple[TaskPlan, ...] = ()
    """The plans of the tasks that wait for this one."""

    @property
    def is_complete(self) -> bool:
        """Whether nothing more will happen to the task (all of its children included)."""
        if not self.mapped:
            return is_final(self.run.state)
        if (
            self.children is None
        ):  # not mapped yet: done only if it ended without mapping
            return is_final(self.run.state) and not isinstance(self.run.state, Mapped)
        return self.unfinished == 0

    def child_finished(self) -> None:
        """Count one child as finished; when it is the last, gather the children."""
        self.unfinished -= 1
        if self.unfinished == 0:
            self.gather_children()

    def gather_children(self) -> None:
        """Give the parent's state its children's states and (lazily) their results."""
        children = self.children or []
        state = self.run.state
        if isinstance(state, Mapped):
            state.map_states = [child.state for child in children]
            state.result = LazyResult(
                lambda: [child.state.result for child in children]
            )

    def runs(self) -> list[TaskRunPlan]:
        """The task's run and its children's."""
        return [self.run, *(self.children or [])]

    def waiting_for_approval(self) -> list[str]:
        """The task runs (`slug`, or `slug[i]` for a child) that wait for approval."""
        return [
            self.slug if run.map_index < 0 else f"{self.slug}[{run.map_index}]"
            for run in self.runs()
            if is_waiting_for_approval(run.state)
        ]


@dataclass(slots=True)
class RunPlan:
    """A flow run ready to drive: its state, parameters and tasks."""

    run_id: str
    state: State
    parameters: dict[str, Any]
    created_at: float
    resumed: bool
    tasks: dict[Task, TaskPlan] = field(default_factory=dict)
    stored_children: dict[tuple[str, int], TaskRunRecord] = field(default_factory=dict)
    """On resume: the mapped children found in the store, by (slug, map index)."""
    stored_details: dict[str, dict[str, Any]] = field(default_factory=dict)
    """On resume: the details of each unfinished task run's latest state."""
    stored_loops: dict[str, dict[str, Any]] = field(default_factory=dict)
    """On resume: for task runs cut short inside a loop, their last Looped details."""

    restarted_children: set[tuple[str, int]] = field(default_factory=set)
    """On restart: mapped children to run again, by (slug, map index)."""
    restarted_maps: set[str] = field(default_factory=set)
    """On restart: slugs of mapped tasks all of whose children run again."""

    def add(self, task: Task, slug: str, mapped: bool, run: TaskRunPlan) -> None:
        """Add a task (in the flow's topological order) with its run."""
        self.tasks[task] = TaskPlan(task, slug, len(self.tasks), mapped, run)


def is_final(state: State) -> bool:
    """Whether nothing more will happen to a task run (a loop's round is not final)."""
    return state.is_finished() and not isinstance(state, Looped)
