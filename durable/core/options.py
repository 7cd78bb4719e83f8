"""Task options: conversions and checks of what `Task(...)` and `@task(...)` accept.

Each helper takes a value as a Prefect 1 user may write it (seconds or a timedelta, a tag
list, exception types) and returns it in one form, or raises ConfigurationError naming the
option and what to write instead.
"""

from __future__ import annotations

import functools
import inspect
import typing
import weakref
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar, overload

from durable.errors import ConfigurationError
from durable.states import State

if TYPE_CHECKING:
    from durable.core.task import ResultSerializer, Task

Owner = TypeVar("Owner")

RESERVED_ARGUMENTS = frozenset({"upstream_tasks", "mapped", "task_args", "flow"})
"""Keywords of a task call, so no `run()` may use them as argument names."""


def with_failure_handler(
    handlers: Iterable[Callable[[Owner, State, State], State | None]],
    on_failure: Callable[[Owner, State], object] | None,
) -> list[Callable[[Owner, State, State], State | None]]:
    """Return a task's or flow's state handlers, with `on_failure` as the last one."""
    found = list(handlers)
    if on_failure is not None:
        found.append(failure_handler(on_failure))
    return found


_METHOD_SIGNATURES: weakref.WeakKeyDictionary[object, inspect.Signature] = (
    weakref.WeakKeyDictionary()
)
_FUNCTION_SIGNATURES: weakref.WeakKeyDictionary[object, inspect.Signature] = (
    weakref.WeakKeyDictionary()
)


def run_signature(task: Task) -> inspect.Signature:
    """Return the signature of `task.run`, cached per function.

    Building a flow binds every task call, and `inspect.signature` costs tens of
    microseconds: one entry per class (or per decorated function) keeps it cheap.
    """
    run = task.run
    function = getattr(run, "__func__", None)
    cache, key = (
        (_FUNCTION_SIGNATURES, run)
        if function is None
        else (_METHOD_SIGNATURES, function)
    )
    try:
        return cache[key]
    except (KeyError, TypeError):  # TypeError: not weakly referenceable
        signature = inspect.signature(run)
    try:
        cache[key] = signature
    except TypeError:
        pass  # not weakly referenceable: computed each time
    return signature


def failure_handler(
    on_failure: Callable[[Owner, State], object],
) -> Callable[[Owner, State, State], State | None]:
    """Turn an `on_failure(owner, state)` callback into a state handler, as Prefect."""

    def call_on_failure(owner: Owner, old_state: State, new_state: State) -> State:
        if new_state.is_failed():
            on_failure(owner, new_state)
        return new_state

    return call_on_failure


@overload
def as_timedelta(value: None, what: str) -> None: ...


@overload
def as_timedelta(value: float | timedelta, what: str) -> timedelta: ...


def as_timedelta(value: float | timedelta | None, what: str) -> timedelta | None:
    """Return a span given as seconds or a timedelta; `what` names it in errors."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ConfigurationError(
            f"{what} must be a number of seconds or a timedelta, not {value!r}"
        )
    span = value if isinstance(value, timedelta) else timedelta(seconds=value)
    if span < timedelta(0):
        raise ConfigurationError(f"{what} must not be negative, got {value!r}")
    return span


def as_timeout(value: float | timedelta | None) -> timedelta | None:
    # A zero timeout means no timeout, as in Prefect.
    return as_timedelta(value, "timeout") or None


def as_tags(tags: Iterable[str] | None) -> set[str]:
    if isinstance(tags, str):  # a string would be split into one tag per letter
        raise TypeError(f"Tags should be a collection of tags, not the string {tags!r}")
    return set(tags or ())


def as_count(max_retries: int | None) -> int:
    if max_retries is None:
        return 0
    if not is_int(max_retries):
        raise ConfigurationError(f"max_retries must be an int, not {max_retries!r}")
    if max_retries < 0:
        raise ConfigurationError(f"max_retries must not be negative: {max_retries}")
    return max_retries


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def as_exception_types(
    retry_on: type[BaseException] | Iterable[type[BaseException]] | None,
) -> tuple[type[BaseException], ...] | None:
    if retry_on is None:
        return None
    given: Iterable[object] = [retry_on] if isinstance(retry_on, type) else retry_on
    kinds: list[type[BaseException]] = []
    for kind in given:
        if not (isinstance(kind, type) and issubclass(kind, BaseException)):
            raise TypeError(f"retry_on must hold exception types, not {kind!r}")
        kinds.append(kind)
    return tuple(kinds)


def as_serializer(
    serializer: str | ResultSerializer | None,
) -> str | ResultSerializer | None:
    if isinstance(serializer, str) and serializer not in ("pickle", "json"):
        raise ConfigurationError(
            f"Unknown serializer {serializer!r}: use 'pickle', 'json', or an object "
            "with name, dumps() and loads()"
        )
    return serializer


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "tags": as_tags,
    "max_retries": as_count,
    "retry_delay": functools.partial(as_timedelta, what="retry_delay"),
    "retry_on": as_exception_types,
    "timeout": as_timeout,
    "cache_for": functools.partial(as_timedelta, what="cache_for"),
    "serializer": as_serializer,
}
"""How `copy(**task_args)` checks the options that `__init__` converts."""


def check_retries(task: Task) -> None:
    if task.max_retries > 0 and task.retry_delay is None:
        raise ConfigurationError(
            f"Task {task.name!r} has max_retries={task.max_retries} but no "
            "retry_delay; pass retry_delay (seconds or a timedelta)"
        )
    if task.retry_delay is not None and not task.max_retries:
        raise ConfigurationError(
            f"Task {task.name!r} has a retry_delay but no max_retries; "
            "pass max_retries > 0"
        )
    if task.retry_on is not None and not task.max_retries:
        raise ConfigurationError(
            f"Task {task.name!r} has retry_on but no max_retries; pass max_retries > 0"
        )


def check_run_signature(task: Task) -> None:
    try:
        parameters = run_signature(task).parameters.values()
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"Task {task.name!r}: the signature of its run() cannot be read ({exc}); "
            "wrap the callable in a plain Python function"
        ) from None
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            raise ConfigurationError(
                f"Task {task.name!r}: run() may not take *{parameter.name}, because "
                "task arguments are stored by keyword; accept **kwargs instead"
            )
        if parameter.kind is inspect.Parameter.POSITIONAL_ONLY:
            raise ConfigurationError(
                f"Task {task.name!r}: run() may not have the positional-only "
                f"argument {parameter.name!r}, because task arguments are stored "
                "by keyword"
            )
    reserved = sorted(RESERVED_ARGUMENTS.intersection(p.name for p in parameters))
    if reserved:
        raise ConfigurationError(
            f"Task {task.name!r}: run() may not have arguments named "
            f"{', '.join(reserved)}; these keywords are reserved for task calls"
        )


def infer_nout(run: Callable[..., Any]) -> int | None:
    try:
        returns = typing.get_type_hints(run).get("return")
    except (NameError, TypeError, AttributeError):  # unresolvable: no inference
        return None
    if typing.get_origin(returns) is not tuple:
        return None
    items = typing.get_args(returns)
    if not items or (len(items) == 2 and items[1] is Ellipsis):
        return None
    return len(items)
