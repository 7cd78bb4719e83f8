"""What a running task can know about itself: `durable.context.task_run_id` and friends.

Read attributes (`context.flow_run_id`, `context.attempt`) or `context.get("key")`, as with
Prefect 1's `prefect.context`. Values live in context variables, so each task run (and each
thread running a task body) sees its own.

Keys: `flow_name`, `flow_run_id`, `parameters`, `scheduled_start_time`, `date`, `today`,
`today_nodash`, `yesterday`, `tomorrow` (and their `_nodash` forms), `task_name`, `task_slug`,
`task_tags`, `task_run_id`, `map_index`, `attempt` (1 on the first try, counting tries cut
short by a crash), `task_run_count` (Prefect's name for `attempt`) and `logger`.

`task_run_id` stays the same across retries and resumes: use it as an idempotency key for
side effects that must happen once per task run.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_flow: ContextVar[Mapping[str, Any]] = ContextVar("durable_flow_context")
_task: ContextVar[Mapping[str, Any]] = ContextVar("durable_task_context")


def get(key: str, default: Any = None) -> Any:
    """Return a context value, or `default` outside a run or when unset."""
    task_values = _task.get(_EMPTY)
    if key in task_values:
        return task_values[key]
    return _flow.get(_EMPTY).get(key, default)


def to_dict() -> dict[str, Any]:
    """Return every context value visible here."""
    return {**_flow.get(_EMPTY), **_task.get(_EMPTY)}


@contextmanager
def flow_context(values: Mapping[str, Any]) -> Iterator[None]:
    """Make flow-run values visible to everything that runs inside the block."""
    token = _flow.set(values)
    try:
        yield
    finally:
        _flow.reset(token)


@contextmanager
def task_context(values: Mapping[str, Any]) -> Iterator[None]:
    """Make task-run values visible to the task body that runs inside the block."""
    token = _task.set(values)
    try:
        yield
    finally:
        _task.reset(token)


def __getattr__(name: str) -> Any:
    # Attribute access (`context.flow_run_id`) as in Prefect 1; unset keys read as None.
    if name.startswith("__"):
        raise AttributeError(name)
    return get(name)
