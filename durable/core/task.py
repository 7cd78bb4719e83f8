"""Tasks: units of work with Prefect 1's options, and the `@task` decorator.

Calling a task inside `with Flow(...)` copies it and binds the arguments to the copy: tasks
become edges and other values become the flow's constants. Nothing here runs a task body;
the engine does.
"""

from __future__ import annotations

import copy as copying
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Generic,
    ParamSpec,
    Protocol,
    Self,
    TypedDict,
    TypeVar,
    Unpack,
    overload,
)

from durable import triggers
from durable.core.options import (
    CONVERTERS,
    as_count,
    as_exception_types,
    as_serializer,
    as_tags,
    as_timedelta,
    as_timeout,
    check_retries,
    check_run_signature,
    failure_handler,
    infer_nout,
    run_signature,
    with_failure_handler,
)
from durable.errors import ConfigurationError
from durable.states import State

if TYPE_CHECKING:
    from durable.core.flow import Flow

P = ParamSpec("P")
R = TypeVar("R")
Owner = TypeVar("Owner")

TaskStateHandler = Callable[["Task", State, State], "State | None"]
"""A task state handler: `(task, old_state, new_state)`, may return a replacement."""


class ResultSerializer(Protocol):
    """What a custom `serializer=` provides: a name stored with each result, and bytes."""

    name: str

    def dumps(self, value: Any) -> bytes:
        """Serialize a result; raise if it cannot be."""
        ...

    def loads(self, data: bytes) -> Any:
        """Rebuild a result from `dumps` output."""
        ...


class TaskOptions(TypedDict, total=False):
    """The keyword options of `Task.__init__`, as `@task(...)` passes them through."""

    name: str | None
    slug: str | None
    tags: Iterable[str] | None
    max_retries: int | None
    retry_delay: float | timedelta | None
    retry_on: type[BaseException] | Iterable[type[BaseException]] | None
    timeout: float | timedelta | None
    trigger: triggers.Trigger | None
    skip_on_upstream_skip: bool
    cache_for: float | timedelta | None
    cache_validator: Callable[..., bool] | None
    cache_key: str | None
    checkpoint: bool | None
    state_handlers: Iterable[TaskStateHandler] | None
    on_failure: Callable[[Task, State], object] | None
    log_stdout: bool
    result: Any
    target: str | Callable[..., str] | None
    task_run_name: str | Callable[..., str] | None
    nout: int | None
    serializer: str | ResultSerializer | None


class Task:
    """A unit of work: subclass it and override `run()`, or decorate a function with `@task`.

    The options are Prefect 1's, in Prefect's order, plus durable's `serializer`: how the
    result is checkpointed (None for the default, "pickle", "json", or an object with
    `name`, `dumps` and `loads`). Tasks compare and hash by identity.
    """

    if TYPE_CHECKING:
        # Each subclass gives `run` its own signature; FunctionTask sets it per instance.
        run: Callable[..., Any]
    else:

        def run(self):
            """Do the task's work; the base task does nothing, as in Prefect."""

    def __init__(
        self,
        name: str | None = None,
        slug: str | None = None,
        tags: Iterable[str] | None = None,
        max_retries: int | None = None,
        retry_delay: float | timedelta | None = None,
        retry_on: type[BaseException] | Iterable[type[BaseException]] | None = None,
        timeout: float | timedelta | None = None,
        trigger: triggers.Trigger | None = None,
        skip_on_upstream_skip: bool = True,
        cache_for: float | timedelta | None = None,
        cache_validator: Callable[..., bool] | None = None,
        cache_key: str | None = None,
        checkpoint: bool | None = None,
        state_handlers: Iterable[TaskStateHandler] | None = None,
        on_failure: Callable[[Task, State], object] | None = None,
        log_stdout: bool = False,
        result: Any = None,
        target: str | Callable[..., str] | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        nout: int | None = None,
        serializer: str | ResultSerializer | None = None,
    ) -> None:
        self.name: str = name or type(self).__name__
        self.slug = slug
        """The slug given explicitly, else None: flows generate one (`Flow.slugs`)."""
        self.tags = as_tags(tags)
        self.max_retries = as_count(max_retries)
        self.retry_delay = as_timedelta(retry_delay, "retry_delay")
        self.retry_on = as_exception_types(retry_on)
        """Exception types that may be retried (None: any failure), as a tuple."""
        self.timeout = as_timeout(timeout)
        self.trigger: triggers.Trigger = trigger or triggers.all_successful
        self.skip_on_upstream_skip = skip_on_upstream_skip
        self.cache_for = as_timedelta(cache_for, "cache_for")
        self.cache_validator = cache_validator
        self.cache_key = cache_key
        self.checkpoint = checkpoint
        self.on_failure = on_failure
        self.state_handlers: list[TaskStateHandler] = with_failure_handler(
            state_handlers or [], on_failure
        )
        self.log_stdout = log_stdout
        self.result = result
        self.target = target
        self.task_run_name = task_run_name
        self.serializer = as_serializer(serializer)
        check_retries(self)
        check_run_signature(self)
        self.nout = nout if nout is not None else infer_nout(self.run)
        """How many items `run()` returns, so that `a, b = task()` works."""

    def __repr__(self) -> str:
        return f"<Task: {self.name}>"

    @property
    def is_async(self) -> bool:
        """Whether `run` is a coroutine function (the engine awaits it)."""
        return inspect.iscoroutinefunction(self.run)

    def copy(self, **task_args: Any) -> Self:
        """Return a copy of the task, with `task_args` attributes set on the copy."""
        new = copying.copy(self)
        new.tags, new.state_handlers = set(self.tags), list(self.state_handlers)
        for attr, value in task_args.items():
            if not hasattr(new, attr):
                raise ConfigurationError(
                    f"Task {self.name!r} has no attribute {attr!r} to set through "
                    "task_args; use the name of a Task option"
                )
            convert = CONVERTERS.get(attr)
            setattr(new, attr, value if convert is None else convert(value))
        if "on_failure" in task_args and task_args["on_failure"] is not None:
            new.state_handlers.append(failure_handler(task_args["on_failure"]))
        check_retries(new)
        return new

    def __call__(
        self,
        *args: Any,
        mapped: bool = False,
        task_args: Mapping[str, Any] | None = None,
        upstream_tasks: Iterable[object] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Self:
        """Copy the task and bind the arguments to the copy, in the active flow."""
        flow = self._flow_for(flow)
        new = self.copy(**(task_args or {}))
        return new.bind(
            *args, mapped=mapped, upstream_tasks=upstream_tasks, flow=flow, **kwargs
        )

    def bind(
        self,
        *args: Any,
        mapped: bool = False,
        upstream_tasks: Iterable[object] | None = None,
        flow: Flow | None = None,
        **kwargs: Any,
    ) -> Self:
        """Bind arguments to this task (not a copy) as a call to `run()` would.

        Task arguments become edges keyed by the argument's name, other values become
        constants of the flow; `upstream_tasks` wait without passing data. Arguments left
        to their defaults are not recorded: the default applies when the task runs.
        """
        flow = self._flow_for(flow)
        flow.set_dependencies(
            self,
            upstream_tasks=upstream_tasks,
            keyword_tasks=self._bind_arguments(args, kwargs),
            mapped=mapped,
        )
        return self

    def map(
        self,
        *args: Any,
        upstream_tasks: Iterable[object] | None = None,
        flow: Flow | None = None,
        task_args: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """Copy the task and bind the arguments as mapped: one child run per item."""
        flow = self._flow_for(flow)
        new = self.copy(**(task_args or {}))
        return new.bind(
            *args, mapped=True, upstream_tasks=upstream_tasks, flow=flow, **kwargs
        )

    def set_dependencies(
        self,
        flow: Flow | None = None,
        upstream_tasks: Iterable[object] | None = None,
        downstream_tasks: Iterable[Task] | None = None,
        keyword_tasks: Mapping[str, object] | None = None,
        mapped: bool = False,
        validate: bool | None = None,
    ) -> None:
        """Set this task's dependencies in `flow` (default: the active flow)."""
        self._flow_for(flow).set_dependencies(
            self,
            upstream_tasks=upstream_tasks,
            downstream_tasks=downstream_tasks,
            keyword_tasks=keyword_tasks,
            mapped=mapped,
            validate=validate,
        )

    def set_upstream(
        self,
        task: object,
        flow: Flow | None = None,
        key: str | None = None,
        mapped: bool = False,
    ) -> None:
        """Make this task wait for `task`, receiving its result as `key` if given."""
        if key is None:
            self.set_dependencies(flow, upstream_tasks=[task], mapped=mapped)
        else:
            self.set_dependencies(flow, keyword_tasks={key: task}, mapped=mapped)

    def set_downstream(
        self,
        task: Task,
        flow: Flow | None = None,
        key: str | None = None,
        mapped: bool = False,
    ) -> None:
        """Make `task` wait for this one, receiving its result as `key` if given."""
        task.set_upstream(self, flow=flow, key=key, mapped=mapped)

    def __getitem__(self, key: Any) -> GetItem:
        """Return a task that takes `result[key]` of this task, in the active flow."""
        label = key.name if isinstance(key, Task) else repr(key)
        getter = GetItem(
            name=f"{self.name}[{label}]",
            checkpoint=self.checkpoint,
            result=self.result,
            serializer=self.serializer,
        )
        return getter.bind(self, key)

    def __iter__(self) -> Iterator[GetItem]:
        """Yield `self[0]`, ..., `self[nout - 1]`, so that `a, b = task()` works."""
        if self.nout is None:
            raise TypeError(
                f"Task {self.name!r} is not iterable; to unpack its result, pass nout= "
                "to it or annotate its run() as returning tuple[...]"
            )
        return (self[index] for index in range(self.nout))

    def _flow_for(self, flow: Flow | None) -> Flow:
        if flow is not None:
            return flow
        from durable.core.flow import active_flow  # deferred: flow.py imports us

        found = active_flow()
        if found is None:
            raise ConfigurationError(
                f"Could not infer an active Flow context for task {self.name!r}: "
                "call tasks inside a `with Flow(...)` block, or pass flow=; "
                f"to run the task's code directly, call {self.name}.run(...)"
            )
        return found

    def _bind_arguments(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        signature = run_signature(self)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise ConfigurationError(
                f"Task {self.name!r} cannot be called with these arguments ({exc}); "
                f"its run() signature is {signature}"
            ) from None
        arguments = dict(bound.arguments)
        for parameter in signature.parameters.values():
            # bind() gathers **kwargs under their own name; each is its own argument.
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                arguments.update(arguments.pop(parameter.name, {}))
        return arguments


class FunctionTask(Task, Generic[P, R]):
    """A task whose `run` is a plain (sync or async) function: what `@task` builds."""

    if TYPE_CHECKING:
        run: Callable[P, R]

    def __init__(self, fn: Callable[P, R], **options: Unpack[TaskOptions]) -> None:
        if not callable(fn):
            raise TypeError(f"@task needs a function, not {fn!r}")
        self.fn = fn
        """The decorated function; `run` is this function, so it keeps its signature."""
        self.run = fn
        functools.update_wrapper(self, fn)
        options["name"] = options.get("name") or getattr(fn, "__name__", None)
        super().__init__(**options)


@overload
def task(fn: Callable[P, R], /) -> FunctionTask[P, R]: ...


@overload
def task(
    fn: None = None, /, **options: Unpack[TaskOptions]
) -> Callable[[Callable[P, R]], FunctionTask[P, R]]: ...


def task(
    fn: Callable[P, R] | None = None, /, **options: Unpack[TaskOptions]
) -> FunctionTask[P, R] | Callable[[Callable[P, R]], FunctionTask[P, R]]:
    """Turn a function into a task: `@task`, or `@task(name=..., max_retries=...)`."""
    if fn is not None:
        return FunctionTask(fn, **options)

    def decorate(fn: Callable[P, R]) -> FunctionTask[P, R]:
        return FunctionTask(fn, **options)

    return decorate


class GetItem(Task):
    """Take one item of an upstream task's result: what `task[key]` builds."""

    def run(self, task_result: Any, key: Any) -> Any:
        """Return `task_result[key]`."""
        return task_result[key]


class Constant(Task):
    """A plain value as a task: stands for a value that is mapped over or flattened."""

    def __init__(self, value: Any, **options: Unpack[TaskOptions]) -> None:
        self.value = value
        """The value the task returns."""
        options.setdefault("name", f"Constant[{type(value).__name__}]")
        super().__init__(**options)

    def run(self) -> Any:
        """Return the value."""
        return self.value
