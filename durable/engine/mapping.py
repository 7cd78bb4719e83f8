"""Mapping: what a mapped task maps over, how many children it gets, what each child sees.

A mapped edge from an unmapped upstream maps over that upstream's result (a sequence); a
mapped edge from a mapped upstream pairs child i with the upstream's child i, so a map of a
map runs child by child. Several mapped edges zip to the shortest, as in Prefect 1. An
unmapped edge from a mapped task passes the list of its children's results (a reduce).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from durable.core.edge import Edge
from durable.core.flow import Flow
from durable.engine.plan import RunPlan, TaskPlan
from durable.states import Failed, Mapped, Skipped, State, Success, TriggerFailed


def is_mapped(flow: Flow, task: Any) -> bool:
    """Whether the task runs once per item of what it maps over."""
    return any(edge.mapped for edge in flow.edges_to(task))


def pairs_child_by_child(plan: RunPlan, edge: Edge) -> bool:
    """Whether child i of the edge's downstream waits only for the upstream's child i."""
    return edge.mapped and not edge.flattened and plan.tasks[edge.upstream].mapped


def values_of(plan: RunPlan, edge: Edge) -> Any:
    """The value an edge carries as a whole (a mapped upstream's results as a list)."""
    upstream = plan.tasks[edge.upstream]
    if upstream.mapped:
        value: Any = [child.state.result for child in upstream.children or []]
    else:
        value = upstream.run.state.result
    if edge.flattened:
        value = [item for part in value for item in part]
    return value


def whole_state(plan: RunPlan, edge: Edge) -> State:
    """The upstream state seen through an unmapped edge (flattened if the edge says so)."""
    state = plan.tasks[edge.upstream].run.state
    if edge.flattened and state.is_successful():
        return Success(result=values_of(plan, edge))
    return state


def upstream_of_task(plan: RunPlan, task: TaskPlan) -> list[tuple[Edge, State]]:
    """What an unmapped task's trigger and inputs see of its upstream tasks."""
    return [
        (edge, upstream.run.state if not edge.flattened else whole_state(plan, edge))
        for edge, upstream in task.inbound
    ]


def upstream_of_child(
    plan: RunPlan, flow: Flow, mapped: TaskPlan, index: int
) -> list[tuple[Edge, State]]:
    """What child `index` of a mapped task sees of its upstream tasks."""
    pairs: list[tuple[Edge, State]] = []
    for edge in flow.edges_to(mapped.task):
        if not edge.mapped:
            pairs.append((edge, whole_state(plan, edge)))
        elif pairs_child_by_child(plan, edge):
            children = plan.tasks[edge.upstream].children or []
            pairs.append((edge, children[index].state))
        else:
            pairs.append((edge, Success(result=mapped.sources[edge][index])))
    return pairs


def blocked_map(plan: RunPlan, flow: Flow, mapped: TaskPlan) -> State | None:
    """The state a mapped task ends in instead of mapping, or None when it can map."""
    edges = flow.edges_to(mapped.task)
    if mapped.task.skip_on_upstream_skip and any(
        whole_state(plan, e).is_skipped() for e in edges
    ):
        return Skipped("Upstream task was skipped.")
    for edge in edges:
        if not edge.mapped:
            continue
        upstream = plan.tasks[edge.upstream]
        name = upstream.task.name
        if pairs_child_by_child(plan, edge):
            if not isinstance(upstream.run.state, Mapped):
                return TriggerFailed(f"Upstream task {name!r} did not map.")
        elif not upstream.run.state.is_successful():
            return TriggerFailed(f"Upstream task {name!r} did not succeed.")
    return None


def map_sources(plan: RunPlan, flow: Flow, mapped: TaskPlan) -> int | State:
    """Record what the task maps over and return its width (or a Failed state)."""
    widths: list[int] = []
    for edge in flow.edges_to(mapped.task):
        if not edge.mapped:
            continue
        if pairs_child_by_child(plan, edge):
            widths.append(len(plan.tasks[edge.upstream].children or []))
            continue
        try:
            values = values_of(plan, edge)
            if not isinstance(values, Sequence):
                values = list(values)
        except TypeError as exc:
            name = plan.tasks[edge.upstream].task.name
            return Failed(
                f"Cannot map over the result of task {name!r}: {exc}", result=exc
            )
        mapped.sources[edge] = values
        widths.append(len(values))
    return min(widths) if widths else 0
