"""Sensors: tasks that wait for something to happen, polling on the run's clock.

A sensor polls; while the condition is false it pauses itself until the next poll
(a timed Paused state), so the engine sleeps on the run's time source and a restart of
the flow run resumes the wait: the resumed run polls again at once and keeps the
original deadline, because the time of the first poll is stored with each Paused state.

The timing lives in a state handler, `sensor_handler`, which reads the run's clock from
the engine's checkpoints: `FileSensor` has it built in, and a task that calls
`wait_for` in its body must list it first in its `state_handlers`:

```python
@task(state_handlers=[sensor_handler])
def wait_for_ready() -> None:
    wait_for(lambda: Path("ready").exists(), poke_interval=timedelta(seconds=1))
```

Each poll is a new attempt of the task run (`context.attempt` grows), and the body runs
again from the top, so the code before `wait_for` must be safe to repeat.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from durable import context, signals
from durable.core.task import Task, TaskStateHandler
from durable.errors import ConfigurationError
from durable.states import Failed, Paused, Running, State
from durable.timesource import SYSTEM_TIME, from_timestamp

__all__ = ["FileSensor", "WaitTimeoutError", "sensor_handler", "wait_for"]

T = TypeVar("T")
WAIT = "durable_wait"
"""The key of a sensor's details in the context of its Paused and Running states."""

_handled: set[str] = set()  # task runs whose task carries sensor_handler (this process)
_handled_lock = threading.Lock()


class WaitTimeoutError(Exception):
    """A sensor's condition did not come true within its timeout."""


def wait_for(
    condition: Callable[[], T],
    *,
    poke_interval: timedelta = timedelta(seconds=5),
    timeout: timedelta = timedelta(minutes=10),
    message: str | None = None,
) -> T:
    """Return `condition()`'s value once it is truthy, polling every `poke_interval`.

    Inside a flow run the task pauses between polls (the task needs `sensor_handler`),
    and fails with `WaitTimeoutError` once `timeout` has passed since the first poll.
    Called outside a flow run (a test calling `task.run()`), it checks once and raises
    `WaitTimeoutError` if the condition is false: only the engine can wait durably.
    """
    value = condition()
    if value:
        return value
    message = message or "Waiting for a condition."
    task_run_id = context.get("task_run_id")
    if task_run_id is None:
        raise WaitTimeoutError(
            f"{message} Not yet, and outside a flow run wait_for() checks only once."
        )
    with _handled_lock:
        handled = task_run_id in _handled
    if not handled:
        raise ConfigurationError(
            "wait_for() in a flow run needs the task to list "
            "durable.tasks.sensors.sensor_handler first in its state_handlers; "
            "it measures the poll interval and timeout on the run's clock"
        )
    details = {
        "poke_interval": poke_interval.total_seconds(),
        "timeout": timeout.total_seconds(),
        "message": message,
    }
    # The handler replaces start_time with one on the run's clock.
    start = SYSTEM_TIME.now() + poke_interval
    raise signals.PAUSE(message, start_time=start, context={WAIT: details})


def sensor_handler(task: Task, old: State, new: State) -> State | None:
    """Time a sensor's polls on the run's clock, and fail it after its timeout.

    When the body pauses to wait, the next poll is `poke_interval` after this poll began
    (the Running state's time), and no later than the deadline; the first poll's time is
    kept in the Paused state, so it survives a restart. A poll at or past the deadline
    that finds the condition false fails the task run with `WaitTimeoutError`.
    """
    task_run_id = context.get("task_run_id")
    if isinstance(new, Running):
        if task_run_id is not None:
            with _handled_lock:
                _handled.add(task_run_id)
        waited = old.context.get(WAIT) if isinstance(old, Paused) else None
        if waited and "started_at" in waited:
            new.context[WAIT] = {"started_at": waited["started_at"]}
        return None
    if new.is_finished() and task_run_id is not None:
        with _handled_lock:
            _handled.discard(task_run_id)
    if not isinstance(new, Paused) or not isinstance(old, Running):
        return None
    waiting, polled_at = new.context.get(WAIT), old.timestamp_seconds
    if not waiting or polled_at is None:
        return None
    started_at = old.context.get(WAIT, {}).get("started_at", polled_at)
    deadline = started_at + waiting["timeout"]
    if polled_at >= deadline:
        if task_run_id is not None:
            with _handled_lock:
                _handled.discard(task_run_id)
        error = WaitTimeoutError(
            f"{waiting['message']} Timed out after {timedelta(seconds=waiting['timeout'])}."
        )
        return Failed(str(error), result=error)
    new.start_time = from_timestamp(min(polled_at + waiting["poke_interval"], deadline))
    new.context[WAIT] = {**waiting, "started_at": started_at}
    return None


class FileSensor(Task):
    """Wait until a file (or directory) exists; return its path.

    `poke_interval` is the time between two checks and `timeout` the longest wait,
    counted from the first check (seconds or timedelta). The task option `timeout` is
    not available here: this one is the sensor's.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        poke_interval: float | timedelta = timedelta(seconds=5),
        timeout: float | timedelta = timedelta(minutes=10),
        **task_kwargs: Any,
    ) -> None:
        self.path = path
        self.poke_interval = as_timedelta(poke_interval)
        self.wait_timeout = as_timedelta(timeout)
        """The longest wait, from the first poll."""
        handlers: list[TaskStateHandler] = list(
            task_kwargs.pop("state_handlers", None) or []
        )
        task_kwargs["state_handlers"] = [sensor_handler, *handlers]
        task_kwargs.setdefault("name", "FileSensor")
        super().__init__(**task_kwargs)

    def run(self, path: str | os.PathLike[str] | None = None) -> str:
        """Return the path once it exists."""
        target = path if path is not None else self.path
        if target is None:
            raise signals.FAIL("FileSensor needs a path (at construction or at call)")
        found = Path(target)
        wait_for(
            found.exists,
            poke_interval=self.poke_interval,
            timeout=self.wait_timeout,
            message=f"Waiting for {str(found)!r} to exist.",
        )
        return str(found)


def as_timedelta(value: float | timedelta) -> timedelta:
    """A span given as seconds or a timedelta."""
    return value if isinstance(value, timedelta) else timedelta(seconds=value)
