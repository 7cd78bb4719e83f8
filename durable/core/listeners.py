"""Listeners told of each task that joins a flow inside a `with` block.

This is how a block such as `case` (in the task library) learns which tasks were created
in it, as Prefect 1's flows consulted the active case in `add_task`. Core calls the
listeners and knows nothing of the blocks that register them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from durable.core.flow import Flow
    from durable.core.task import Task

TaskListener = Callable[["Flow", "Task"], None]
"""Told `(flow, task)` when a task joins a flow inside a `watch_added_tasks` block."""

_listeners: ContextVar[tuple[TaskListener, ...]] = ContextVar(
    "durable_task_listeners", default=()
)


@contextmanager
def watch_added_tasks(listener: TaskListener) -> Iterator[None]:
    """Call `listener(flow, task)` for each task that joins any flow inside the block.

    Parameters and constants are not reported: they must stay root tasks. Blocks nest:
    every enclosing listener is called, outermost first.
    """
    token = _listeners.set((*_listeners.get(), listener))
    try:
        yield
    finally:
        _listeners.reset(token)


@contextmanager
def unheard() -> Iterator[None]:
    """Tell no listener of the tasks added inside the block: they are not new tasks.

    `Flow.copy()` adds the tasks of an existing flow to its copy this way.
    """
    token = _listeners.set(())
    try:
        yield
    finally:
        _listeners.reset(token)


def notify_added(flow: Flow, task: Task) -> None:
    """Tell the listeners of the current context that `task` joined `flow`."""
    for listener in _listeners.get():
        listener(flow, task)
