"""A flow's DAG drawn as text: what `flow.visualize()` returns, with no graphviz needed.

One line per task, in the order the engine runs them: the task's slug, its state when a
flow run's state is given, and the tasks it waits for.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING

from durable.states import State

if TYPE_CHECKING:
    from durable.core.edge import Edge
    from durable.core.flow import Flow
    from durable.core.task import Task

MAPPED = "<map>"
"""Marks a mapped edge, as Prefect 1's graphviz labels mapped tasks."""


def draw(flow: Flow, flow_state: State | None = None) -> str:
    """Return the flow's tasks, one line each, in dependency order (no final newline).

    A line reads `slug  [state]  <- key=upstream, upstream`: an edge with a key passes
    the upstream's result as that argument, one without a key only waits for it. A
    mapped edge ends in `<map>`, a flattened one reads `flatten(upstream)`.

    Args:
        flow: The flow to draw.
        flow_state: A state returned by `flow.run()`; each task's state name is shown.
            A task the state does not mention is shown as Pending.
    """
    order = {task: index for index, task in enumerate(flow.sorted_tasks())}
    states = _task_states(flow_state)
    slugs = [flow.slugs[task] for task in order]
    names = [_state_name(states.get(task)) for task in order] if states else []
    slug_width = max(map(len, slugs), default=0)
    state_width = max(map(len, names), default=0)
    lines = []
    for index, task in enumerate(order):
        columns = [slugs[index].ljust(slug_width)]
        if names:
            columns.append(names[index].ljust(state_width))
        edges = sorted(
            flow.edges_to(task),
            key=lambda e: (e.key is None, e.key or "", order[e.upstream]),
        )
        if edges:
            columns.append("<- " + ", ".join(_edge(flow, edge) for edge in edges))
        lines.append("  ".join(columns).rstrip())
    return "\n".join(lines)


def _task_states(flow_state: State | None) -> Mapping[Task, State]:
    if flow_state is None:
        return {}
    found = flow_state.result
    return found if isinstance(found, Mapping) else {}


def _state_name(state: State | None) -> str:
    if state is None:
        return "Pending"
    children = getattr(state, "map_states", None)
    if not children:
        return state.name
    counts = Counter(child.name for child in children)
    summary = ", ".join(f"{n} {name}" for name, n in sorted(counts.items()))
    return f"{state.name} ({summary})"


def _edge(flow: Flow, edge: Edge) -> str:
    upstream = flow.slugs[edge.upstream]
    if edge.flattened:
        upstream = f"flatten({upstream})"
    text = upstream if edge.key is None else f"{edge.key}={upstream}"
    return f"{text} {MAPPED}" if edge.mapped else text
