"""`apply_map` and `pause_task`, as Prefect 1's `prefect.utilities.tasks` had them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, TypeVar

from durable import context, signals
from durable.core.edge import flatten, unmapped
from durable.core.flow import Flow, active_flow
from durable.core.task import Constant, Task
from durable.errors import ConfigurationError
from durable.timesource import SYSTEM_TIME

R = TypeVar("R")


def apply_map(func: Callable[..., R], *args: Any, flow: Flow | None = None,
              **kwargs: Any) -> R:  # fmt: skip
    """Map a whole sub-graph: call `func` once, as if on each item of the mapped inputs.

    Every task `func` creates runs once per item; a task fed by another created in `func`
    pairs with it child by child. Wrap an argument in `unmapped(...)` to pass it whole, as
    with `task.map`. Returns what `func` returns.
    """
    target = flow or active_flow()
    if target is None:
        raise ConfigurationError(
            "apply_map() needs a flow: call it inside `with Flow(...)` or pass flow="
        )
    inputs: dict[Task, tuple[bool, bool]] = {}  # upstream -> (mapped, flattened)

    def stand_in(value: Any) -> Any:
        mapped, flat = not isinstance(value, unmapped), isinstance(value, flatten)
        inner = value.value if isinstance(value, unmapped | flatten) else value
        if isinstance(inner, Task):
            inputs[inner] = (mapped, flat)
            return inner
        return value if not mapped else _constant_task(inner, inputs)

    with Flow(f"apply_map of {getattr(func, '__name__', 'a function')}") as sub:
        result = func(
            *(stand_in(a) for a in args), **{k: stand_in(v) for k, v in kwargs.items()}
        )
    for task in sub.tasks:
        if task not in inputs:
            target.add_task(task)
            for key, value in sub.constants.get(task, {}).items():
                target.constants.setdefault(task, {})[key] = value
    for edge in sub.edges:
        mapped, flat = inputs.get(edge.upstream, (True, edge.flattened))
        target.add_edge(edge.upstream, edge.downstream, edge.key, mapped, flat)
    return result


def _constant_task(value: Any, inputs: dict[Task, tuple[bool, bool]]) -> Task:
    task = Constant(value)
    inputs[task] = (True, False)
    return task


def pause_task(message: str | None = None, duration: timedelta | None = None) -> None:
    """Pause the running task until someone approves it (or for `duration`).

    Does nothing when the task run was approved already (`context.resume`), so a task can
    call it at the point where it needs a person's go-ahead.
    """
    if context.get("resume"):
        return
    start = None if duration is None else SYSTEM_TIME.now() + duration
    raise signals.PAUSE(message or "Paused by pause_task().", start_time=start)
