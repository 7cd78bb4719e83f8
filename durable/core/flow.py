"""Flows: a DAG of tasks, edges and constants, built with `with Flow(...)` or imperatively.

A flow gives every task a slug that stays the same each time its file is loaded, because
slugs key a run's checkpoints. `flow.run()` hands the flow to the engine.
"""

from __future__ import annotations

import copy as copying
import itertools
import os
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, KeysView, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from durable.core.diagram import draw
from durable.core.edge import Edge, EdgeAnnotation, Graph, flatten, unmapped
from durable.core.identity import defined_at, fingerprint
from durable.core.listeners import notify_added, unheard
from durable.core.options import run_signature, with_failure_handler
from durable.core.parameter import Parameter, check_parameters
from durable.core.task import Constant, Task
from durable.errors import ConfigurationError
from durable.states import State

Catchup = Literal["skip", "all", "none"]
"""What a worker does with ticks missed while none ran (see docs/worker.md)."""

CATCHUPS: tuple[Catchup, ...] = ("skip", "all", "none")

T = TypeVar("T", bound=Task)

FlowStateHandler = Callable[["Flow", State, State], "State | None"]
"""A flow state handler: `(flow, old_state, new_state)`, may return a replacement."""

_active: ContextVar[Flow | None] = ContextVar("durable_active_flow", default=None)


def active_flow() -> Flow | None:
    """Return the flow of the innermost `with Flow(...)` block, if any."""
    return _active.get()


class Flow:
    """A named DAG of tasks, as Prefect 1's `Flow`.

    `tasks` and `edges` iterate in insertion order, so everything derived from them
    (slugs, `sorted_tasks()`) is deterministic. Edges are indexed per task both ways,
    so `edges_to(task)` costs the task's degree, not the flow's size.
    """

    def __init__(
        self,
        name: str,
        # The layers above core own these types (schedules, engine, results).
        schedule: Any = None,
        executor: Any = None,
        environment: Any = None,
        run_config: Any = None,
        storage: Any = None,
        tasks: Iterable[Task] | None = None,
        edges: Iterable[Edge] | None = None,
        reference_tasks: Iterable[Task] | None = None,
        state_handlers: Iterable[FlowStateHandler] | None = None,
        on_failure: Callable[[Flow, State], object] | None = None,
        validate: bool | None = None,
        result: Any = None,
        terminal_state_handler: Callable[..., State | None] | None = None,
        *,
        catchup: Catchup | None = None,
    ) -> None:
        if not name:
            raise ConfigurationError(f"A flow needs a non-empty name, not {name!r}")
        if catchup not in (None, *CATCHUPS):
            raise ConfigurationError(
                f"Flow {name!r} got catchup={catchup!r}; use one of "
                f"{', '.join(map(repr, CATCHUPS))} (see docs/worker.md)"
            )
        if schedule is not None and not callable(getattr(schedule, "next", None)):
            raise ConfigurationError(
                f"Flow {name!r} got schedule={schedule!r}; pass a schedule from "
                "durable.schedules (IntervalSchedule, CronSchedule, Schedule(...))"
            )
        self.name = name
        self.schedule, self.executor, self.result = schedule, executor, result
        self.environment, self.run_config = environment, run_config
        self.storage = storage
        self.catchup = catchup
        """What a worker does with ticks missed while none ran: skip (run the newest),
        all, or none; None leaves it to the worker's --catchup."""
        self.on_failure = on_failure
        self.state_handlers: list[FlowStateHandler] = with_failure_handler(
            state_handlers or [], on_failure
        )
        self.terminal_state_handler = terminal_state_handler
        """Called as `(flow, state, reference_task_states)`; may replace the final state."""
        self.source_path, self._source_module = defined_at(self)
        """The absolute path of the file that built the flow (None if not a file)."""
        self._tokens: list[Token[Flow | None]] = []
        self._reset_graph()
        for task in tasks or ():
            self.add_task(task)
        for edge in edges or ():
            self.add_edge(*_fields(edge), validate=validate)
        if reference_tasks is not None:
            self.set_reference_tasks(reference_tasks)

    def _reset_graph(self) -> None:
        self.constants: defaultdict[Task, dict[str, Any]] = defaultdict(dict)
        """Plain (non-task) arguments of each task, by argument name."""
        self.slugs: dict[Task, str] = {}
        """Each task's slug in this flow: its checkpoint key."""
        self._graph = Graph()
        self._by_slug: dict[str, Task] = {}
        self._slug_counts: dict[str, int] = {}
        self._parameters: dict[str, Parameter] = {}
        self._reference_tasks: dict[Task, None] = {}

    def __repr__(self) -> str:
        return f'<Flow: name="{self.name}">'

    def __len__(self) -> int:
        return len(self._graph.tasks)

    def __enter__(self) -> Self:
        self._tokens.append(_active.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        _active.reset(self._tokens.pop())

    @property
    def tasks(self) -> KeysView[Task]:
        """The flow's tasks: a read-only set, in insertion order."""
        return self._graph.tasks.keys()

    @property
    def edges(self) -> KeysView[Edge]:
        """The flow's edges: a read-only set, in insertion order."""
        return self._graph.edges.keys()

    def add_task(self, task: T) -> T:
        """Add a task (once; adding it again does nothing) and give it its slug."""
        if task in self._graph.tasks:
            return task
        if not isinstance(task, Task):
            raise ConfigurationError(f"A flow holds tasks, not {task!r}")
        if isinstance(task, Parameter) and task.name in self._parameters:
            raise ConfigurationError(
                f"Flow {self.name!r} already has a parameter named {task.name!r}; "
                "use that Parameter object, or give this one another name"
            )
        # Generated slugs number the tasks of one name (and tags) in insertion order,
        # as Prefect's: building the flow again gives the same slugs.
        base = "-".join([task.name, *sorted(task.tags)])
        count = self._slug_counts.get(base, 0) + (task.slug is None)
        slug = f"{base}-{count}" if task.slug is None else task.slug
        owner = self._by_slug.get(slug)
        if owner is not None:
            raise ConfigurationError(
                f"Tasks {owner!r} and {task!r} in flow {self.name!r} both have the slug "
                f"{slug!r}; slugs identify checkpoints, so give one a distinct slug="
            )
        self._graph.add_task(task)
        self._slug_counts[base] = count
        self.slugs[task], self._by_slug[slug] = slug, task
        if isinstance(task, Parameter):
            self._parameters[task.name] = task
        elif not isinstance(task, Constant):
            notify_added(self, task)  # e.g. an enclosing `case` block
        return task

    def add_edge(
        self,
        upstream: Task,
        downstream: Task,
        key: str | None = None,
        mapped: bool = False,
        flattened: bool = False,
        validate: bool | None = None,
    ) -> Edge:
        """Make `downstream` wait for `upstream`, receiving its result as `key` if given.

        The edge is checked at once: no self-edges, no edges into parameters, one edge or
        constant per key, a key `run()` accepts, and no cycle. `validate=False` skips the
        cycle check; `validate=True` also validates the whole flow.
        """
        if isinstance(downstream, Parameter):
            raise ConfigurationError(
                f"Parameter {downstream.name!r} cannot depend on {upstream!r}: "
                "parameters get their values when a run starts"
            )
        if upstream is downstream:
            raise ConfigurationError(f"Task {upstream!r} cannot depend on itself")
        edge = Edge(upstream, downstream, key, mapped, flattened)
        if key is not None:
            self._check_key(downstream, key)
        if validate is not False and self._graph.reaches(downstream, upstream):
            raise ConfigurationError(
                f"An edge from {upstream!r} to {downstream!r} would make a cycle in flow "
                f"{self.name!r}: {downstream!r} already runs before {upstream!r}"
            )
        self.add_task(upstream)
        self.add_task(downstream)
        self._graph.add_edge(edge)
        if validate:
            self.validate()
        return edge

    def set_dependencies(
        self,
        task: Task,
        upstream_tasks: Iterable[object] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: Mapping[str, object] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Add `task` with its dependencies; plain `keyword_tasks` become constants."""
        self.add_task(task)
        for item in upstream_tasks or ():
            upstream, is_mapped, _ = _unwrap(item, mapped)
            if not isinstance(upstream, Task):
                raise ConfigurationError(
                    f"upstream_tasks of {task!r} must be tasks, not {upstream!r}"
                )
            self.add_edge(upstream, task, mapped=is_mapped, validate=validate)
        for downstream in downstream_tasks or ():
            self.add_edge(task, downstream, validate=validate)
        for key, item in (keyword_tasks or {}).items():
            value, is_mapped, is_flat = _unwrap(item, mapped)
            if not isinstance(value, Task) and (is_mapped or is_flat):
                value = Constant(value)  # only an edge can be mapped or flattened
            if isinstance(value, Task):
                self.add_edge(value, task, key, is_mapped, is_flat, validate)
            else:
                self._add_constant(task, key, value)

    def chain(self, *tasks: Task, validate: bool | None = None) -> list[Edge]:
        """Make each task wait for the one before it."""
        pairs = itertools.pairwise(tasks)
        return [self.add_edge(up, down, validate=validate) for up, down in pairs]

    def get_tasks(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        task_type: type[Task] | None = None,
    ) -> list[Task]:
        """Return the tasks matching every criterion given, in insertion order."""
        wanted = set(tags or ())
        return [
            t
            for t in self._graph.tasks
            if (name is None or t.name == name)
            and (slug is None or self.slugs[t] == slug)
            and wanted <= t.tags
            and (task_type is None or isinstance(t, task_type))
        ]

    def task_by_slug(self, slug: str) -> Task | None:
        """Return the task with this slug, or None."""
        return self._by_slug.get(slug)

    def edges_to(self, task: Task) -> set[Edge]:
        """Return the edges into `task`."""
        return set(self._graph.edges_to.get(self._known(task), ()))

    def edges_from(self, task: Task) -> set[Edge]:
        """Return the edges out of `task`."""
        return set(self._graph.edges_from.get(self._known(task), ()))

    def upstream_tasks(self, task: Task) -> set[Task]:
        """Return the tasks `task` waits for."""
        return {e.upstream for e in self.edges_to(task)}

    def downstream_tasks(self, task: Task) -> set[Task]:
        """Return the tasks that wait for `task`."""
        return {e.downstream for e in self.edges_from(task)}

    def root_tasks(self) -> set[Task]:
        """Return the tasks without upstream edges."""
        return {t for t in self._graph.tasks if not self._graph.edges_to.get(t)}

    def terminal_tasks(self) -> set[Task]:
        """Return the tasks without downstream edges."""
        return {t for t in self._graph.tasks if not self._graph.edges_from.get(t)}

    def parameters(self) -> set[Parameter]:
        """Return the flow's parameters."""
        return set(self._parameters.values())

    def reference_tasks(self) -> set[Task]:
        """Return the tasks whose states decide the flow's (default: terminal tasks)."""
        return set(self._reference_tasks) or self.terminal_tasks()

    def set_reference_tasks(self, tasks: Iterable[Task]) -> None:
        """Choose the tasks whose states decide the flow's state (empty: the default)."""
        chosen = dict.fromkeys(tasks)
        for task in chosen:
            self._known(task)
        self._reference_tasks = chosen

    def sorted_tasks(self) -> tuple[Task, ...]:
        """Return the tasks in dependency order, ties in insertion order (cached)."""
        return self._graph.sorted(self.name)

    def validate(self) -> None:
        """Check that edges join tasks of this flow, there is no cycle, and the
        reference tasks belong to the flow.

        Raises:
            ConfigurationError: The flow is inconsistent; the message says where.
        """
        for edge in self._graph.edges:
            self._known(edge.upstream)
            self._known(edge.downstream)
        self._graph.sorted(self.name, fresh=True)
        for task in self._reference_tasks:
            self._known(task)

    def fingerprint(self) -> str:
        """Return a sha256 of the flow's shape: tasks, edges and constant names.

        Loading the same file twice gives the same fingerprint; adding or removing a
        task, an edge or a constant argument changes it. Constant values do not count.
        """
        return fingerprint(self, self._source_module)

    def visualize(
        self,
        flow_state: State | None = None,
        filename: str | os.PathLike[str] | None = None,
    ) -> str:
        """Return the DAG as text, one line per task; write it to `filename` if given.

        Prefect 1 drew the graph with graphviz; this draws it as text, so it needs no
        system package. Each line is a task's slug, its state when `flow_state` (what
        `flow.run()` returned) is given, and its upstream tasks with their argument
        names; mapped edges are marked `<map>`. Print the text to see it: unlike
        Prefect's, nothing is displayed. The file, when asked for, ends with a newline.
        """
        text = draw(self, flow_state)
        if filename is not None:
            with open(filename, "w", encoding="utf-8") as out:
                out.write(f"{text}\n" if text else "")
        return text

    def copy(self) -> Flow:
        """Return a copy with the same tasks, edges, constants and slugs."""
        new = copying.copy(self)
        new._tokens, new.state_handlers = [], list(self.state_handlers)
        new._reset_graph()
        with unheard():  # the tasks are not new: an enclosing `case` leaves them be
            for task in self._graph.tasks:
                new.add_task(task)
            for edge in self._graph.edges:
                new.add_edge(*_fields(edge), validate=False)
        for task, values in self.constants.items():
            new.constants[task].update(values)
        new._reference_tasks = dict(self._reference_tasks)
        return new

    def validate_parameters(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Return every parameter's value for a run, refusing unknown and missing ones.

        Raises:
            ParameterError: A name is not a parameter of the flow, or a required
                parameter is missing.
        """
        return check_parameters(self.name, self._parameters.values(), parameters)

    def run(
        self,
        parameters: Mapping[str, Any] | None = None,
        run_id: str | None = None,
        executor: Any = None,
        db: str | os.PathLike[str] | None = None,
        *,
        allow_flow_changes: bool = False,
        run_on_schedule: bool | None = None,
        durability: Literal["full", "normal"] = "full",
        restart: bool | str | Collection[str] = False,
        **kwargs: Any,
    ) -> State:
        """Run the flow (or resume run `run_id`) and return its final state.

        Keyword arguments named like parameters are parameters, as in Prefect 1. The
        returned state's result maps each task to its state. A resumed run keeps the
        parameters it started with; parameters given here must agree with them.
        A flow with a schedule blocks and runs once per schedule event (each a new run,
        its clock's `parameter_defaults` over these parameters) and returns the last
        run's state; `run_on_schedule=False` runs it once, now. `restart=True` (with
        `run_id`) runs the run's failed task runs, and everything downstream of them, again;
        `restart=["slug"]` runs those tasks and everything downstream of them again.
        `durability="normal"` trades safety on power loss for speed.
        """
        if active_flow() is self:
            raise ConfigurationError(
                f"flow.run() was called inside the `with Flow({self.name!r})` block "
                "that builds the flow; call it after the block"
            )
        unexpected = sorted(set(kwargs) - set(self._parameters))
        if unexpected:
            raise ConfigurationError(
                f"flow.run() got unexpected keyword argument(s) {', '.join(unexpected)}; "
                f"its keyword arguments must be parameters of flow {self.name!r} "
                f"({', '.join(sorted(self._parameters)) or 'it has none'})"
            )
        explicit = {**(parameters or {}), **kwargs}
        self.validate_parameters(explicit)  # refuse bad parameters before anything runs
        if self.schedule is not None and run_on_schedule is not False:
            if run_id is not None:
                raise ConfigurationError(
                    f"Flow {self.name!r} runs on its schedule, one new run per event: "
                    "pass run_on_schedule=False to start or resume run_id once"
                )
            from durable.engine.scheduled import run_on_schedule as run_scheduled

            return run_scheduled(
                self, parameters=explicit or None, executor=executor, db=db,
                durability=durability,
            )  # fmt: skip
        # Imported at call time: the engine builds on core, never the other way round.
        from durable.engine.flow_runner import run_flow

        return run_flow(
            self,
            parameters=explicit or None,
            run_id=run_id,
            executor=executor,
            db=db,
            allow_flow_changes=allow_flow_changes,
            durability=durability,
            restart=restart,
        )

    def _known(self, task: Task) -> Task:
        if task not in self._graph.tasks:
            raise ConfigurationError(f"Task {task!r} is not in flow {self.name!r}")
        return task

    def _check_key(self, task: Task, key: str) -> None:
        taken = key in self.constants.get(task, {}) or any(
            e.key == key for e in self._graph.edges_to.get(task, ())
        )
        if taken:
            raise ConfigurationError(
                f"Argument {key!r} of {task!r} in flow {self.name!r} is already bound; "
                "each argument takes one task or value"
            )
        signature = run_signature(task)
        if not any(
            p.name == key or p.kind is p.VAR_KEYWORD
            for p in signature.parameters.values()
        ):
            raise ConfigurationError(
                f"{task!r} has no argument {key!r}: its run() signature is {signature}"
            )

    def _add_constant(self, task: Task, key: str, value: object) -> None:
        items: Iterable[object] = ()
        if isinstance(value, dict):
            items = value.values()
        elif isinstance(value, list | tuple | set | frozenset):
            items = value
        if any(isinstance(item, Task) for item in items):
            raise ConfigurationError(
                f"Argument {key!r} of {task!r} holds tasks inside a "
                f"{type(value).__name__}, which is not supported yet; pass each task "
                "as its own argument"
            )
        self._check_key(task, key)
        self.constants[task][key] = value


def _fields(edge: Edge) -> tuple[Task, Task, str | None, bool, bool]:
    return edge.upstream, edge.downstream, edge.key, edge.mapped, edge.flattened


def _unwrap(item: object, mapped: bool) -> tuple[object, bool, bool]:
    is_mapped, is_flat = mapped, False
    while isinstance(item, EdgeAnnotation):
        is_mapped = is_mapped and not isinstance(item, unmapped)
        is_flat = is_flat or isinstance(item, flatten)
        item = item.value
    return item, is_mapped, is_flat
