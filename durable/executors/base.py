"""The executor protocol, and the errors of bodies that run in another process.

An executor decides where task bodies run; everything else about a task run (retries,
timeouts, signals, state handlers, checkpoints) stays with the runner in the flow's own
process, which alone writes the database.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from typing import Any, Protocol

from durable.errors import DurableError


class Executor(Protocol):
    """Runs task bodies; the flow runner runs at most `max_workers` at once."""

    max_workers: int

    def start(self) -> AbstractAsyncContextManager[None]:
        """Hold what the executor needs (threads, processes, a cluster) for one run.

        The flow runner enters it around a run's task runs and always leaves it, also
        on a failure or a cancellation, so that pools and clusters never outlive a run.
        Entering it again while it is held reuses what is held.
        """
        ...

    async def call(
        self, fn: Callable[..., Any], kwargs: dict[str, Any], *, is_async: bool,
        abandonable: bool,
    ) -> Any:  # fmt: skip
        """Call one task body with its inputs and return its result.

        Runs inside the task run's context (`durable.context`), which the executor
        carries to wherever the body runs. `abandonable` asks for a body that a
        cancelled scope can walk away from (used for timeouts).
        """
        ...


class WorkerCrashedError(DurableError):
    """The process running a task body died before the body finished."""

    def __init__(self, *, task: str, task_run_id: str | None, detail: str) -> None:
        super().__init__(
            f"Task {task!r} (task run {task_run_id!r}) did not finish: {detail}. "
            "The task run fails; the flow run goes on per its triggers"
        )
        self.task, self.task_run_id, self.detail = task, task_run_id, detail

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only arguments: pickle's default (cls(*args)) cannot rebuild it.
        rebuild = partial(
            type(self), task=self.task, task_run_id=self.task_run_id, detail=self.detail
        )
        return (rebuild, (), self.__dict__)


class TransferError(DurableError):
    """A task body, its inputs or its result cannot cross to or from a worker."""

    def __init__(self, *, task: str, what: str, reason: str) -> None:
        super().__init__(
            f"Task {task!r}: its {what} cannot be sent between processes ({reason}); "
            "use picklable values, or run the task with a LocalExecutor or "
            "ConcurrentExecutor"
        )
        self.task, self.what, self.reason = task, what, reason

    def __reduce__(self) -> tuple[Any, ...]:
        rebuild = partial(
            type(self), task=self.task, what=self.what, reason=self.reason
        )
        return (rebuild, (), self.__dict__)


class RemoteException(Exception):  # noqa: N818 (it stands for the user's exception)
    """Stands in for a task body's exception that could not be pickled back.

    Keeps the original's type name, message and traceback text; user exceptions are
    otherwise never wrapped.
    """

    def __init__(self, type_name: str, message: str, traceback_text: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name, self.message = type_name, message
        self.traceback_text = traceback_text
        """The original traceback, formatted in the worker."""

    @classmethod
    def from_exception(cls, exc: BaseException) -> RemoteException:
        """Describe an exception by its type, message and traceback."""
        text = "".join(traceback.format_exception(exc))
        return cls(type(exc).__qualname__, str(exc), text)

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.type_name, self.message, self.traceback_text)
        return (type(self), args, self.__dict__)


class InterruptedBody(Exception):  # noqa: N818 (named for what happened)
    """A task body raised KeyboardInterrupt on a worker thread or in a worker process.

    Ctrl-C reaches only the flow process's main thread (worker processes ignore it), so
    this one is the body's own doing: it fails the task run, as a body's SystemExit
    does. Only a KeyboardInterrupt on the engine's own thread stops the flow run and
    leaves it resumable (docs/decisions.md).
    """

    def __init__(self, error: BaseException, where: str) -> None:
        super().__init__(f"the task body raised {error!r} in {where}")
        self.where = where

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_interrupted, (self.args, self.__dict__))


def _rebuild_interrupted(
    args: tuple[Any, ...], state: dict[str, Any]
) -> InterruptedBody:
    error = InterruptedBody.__new__(InterruptedBody)
    error.args = args
    error.__dict__.update(state)
    return error
