"""Edges between tasks, the `unmapped`/`flatten` annotations, and the graph they form.

An edge says that a downstream task waits for an upstream one and, when it has a key,
receives the upstream's result as that keyword argument of its `run()`.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from durable.errors import ConfigurationError

if TYPE_CHECKING:
    from durable.core.task import Task


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency of `downstream` on `upstream`, optionally passing data under `key`.

    Edges are values: two edges are equal when they join the same task objects (tasks
    compare by identity) with the same key and flags.
    """

    upstream: Task
    """The task that must finish first."""
    downstream: Task
    """The task that waits for it."""
    key: str | None = None
    """The keyword argument of `downstream.run()` that receives the upstream's result."""
    mapped: bool = False
    """Whether the downstream task maps over the upstream's result."""
    flattened: bool = False
    """Whether the upstream's (mapped) result is flattened one level first."""

    def __post_init__(self) -> None:
        if self.key is not None and not _is_identifier(self.key):
            raise ConfigurationError(
                f"Edge key {self.key!r} from {self.upstream!r} to {self.downstream!r} "
                "is not a valid Python identifier; use the name of an argument of "
                f"{self.downstream.name}.run()"
            )

    def __repr__(self) -> str:
        key = f" (key={self.key})" if self.key else ""
        return f"<Edge{key}: {self.upstream.name} to {self.downstream.name}>"


def _is_identifier(key: object) -> bool:
    return isinstance(key, str) and key.isidentifier()


class EdgeAnnotation:
    """Wraps a value passed to a task to say how the edge it makes should behave."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value
        """The task or plain value that was wrapped."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.value!r})"


class unmapped(EdgeAnnotation):  # noqa: N801 (Prefect's name)
    """Pass a value whole to every mapped child instead of mapping over it."""

    __slots__ = ()


class flatten(EdgeAnnotation):  # noqa: N801 (Prefect's name)
    """Flatten a mapped task's list of lists one level before mapping over it."""

    __slots__ = ()


class Graph:
    """Tasks and edges in insertion order, with each task's edges indexed both ways.

    `edges_to(task)` then costs the task's degree, and the topological order is cached
    until the next change: the engine uses both on 10,000-task flows.
    """

    def __init__(self) -> None:
        self.tasks: dict[Task, int] = {}
        """Each task with its insertion index."""
        self.edges: dict[Edge, None] = {}
        self.edges_to: dict[Task, dict[Edge, None]] = {}
        self.edges_from: dict[Task, dict[Edge, None]] = {}
        self._sorted: tuple[Task, ...] | None = None

    def add_task(self, task: Task) -> None:
        """Add a task that is not in the graph yet."""
        self.tasks[task] = len(self.tasks)
        self._sorted = None

    def add_edge(self, edge: Edge) -> None:
        """Add an edge between tasks of the graph (again: no change)."""
        if edge not in self.edges:
            self.edges[edge] = None
            self.edges_to.setdefault(edge.downstream, {})[edge] = None
            self.edges_from.setdefault(edge.upstream, {})[edge] = None
            self._sorted = None

    def reaches(self, start: Task, target: Task) -> bool:
        """Return whether a path of edges leads from `start` to `target`."""
        # Depth-first along downstream edges: O(1) when `start` is new or a sink.
        seen, stack = {start}, [start]
        while stack:
            for edge in self.edges_from.get(stack.pop(), ()):
                if edge.downstream is target:
                    return True
                if edge.downstream not in seen:
                    seen.add(edge.downstream)
                    stack.append(edge.downstream)
        return False

    def sorted(self, flow_name: str, *, fresh: bool = False) -> tuple[Task, ...]:
        """Return the tasks in dependency order, ties in insertion order (cached).

        Raises:
            ConfigurationError: The edges make a cycle; names the tasks in it.
        """
        if self._sorted is None or fresh:
            self._sorted = self._sort(flow_name)
        return self._sorted

    def _sort(self, flow_name: str) -> tuple[Task, ...]:
        # Kahn's algorithm; a heap of insertion indexes breaks ties stably.
        waiting = {t: len(self.edges_to.get(t, ())) for t in self.tasks}
        ready = [(i, t) for t, i in self.tasks.items() if not waiting[t]]
        heapq.heapify(ready)
        order: list[Task] = []
        while ready:
            task = heapq.heappop(ready)[1]
            order.append(task)
            for edge in self.edges_from.get(task, ()):
                waiting[edge.downstream] -= 1
                if not waiting[edge.downstream]:
                    index = self.tasks[edge.downstream]
                    heapq.heappush(ready, (index, edge.downstream))
        if len(order) < len(self.tasks):
            stuck = ", ".join(repr(t) for t, n in waiting.items() if n)
            raise ConfigurationError(
                f"Flow {flow_name!r} has a cycle; these tasks wait on each other "
                f"(directly or not): {stuck}"
            )
        return tuple(order)
