"""TaskRunner: takes one task run as far as it can go, checkpointing every change.

A run is a short list of named steps (Prefect 1's TaskRunner pipeline): each takes the
current state and returns the next, unchanged when the step does not apply.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio

from durable import context, signals
from durable.core.edge import Edge
from durable.core.parameter import Parameter
from durable.core.task import Task
from durable.engine.executors import Executor
from durable.engine.runner import as_transition, call_handlers
from durable.errors import SerializationError
from durable.log import capture_prints
from durable.states import (
    Failed,
    NoResult,
    Pending,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from durable.store import Store
from durable.store.serializers import JSON, PICKLE, dump_exception, resolve_serializer
from durable.timesource import TimeSource

logger = logging.getLogger("durable.TaskRunner")

ResultBlob = tuple[str, bytes] | None
"""A serialized result: (serializer name, bytes), or None when nothing is stored."""


@dataclass(frozen=True, slots=True)
class RunEnvironment:
    """What every task run of one flow run shares."""

    run_id: str
    store: Store
    time: TimeSource
    executor: Executor


class TaskRunner:
    """Runs one task run: upstream checks, trigger, body with retries, checkpoints."""

    def __init__(
        self, task: Task, slug: str, task_run_id: str, attempts: int,
        env: RunEnvironment,
    ) -> None:  # fmt: skip
        self.task, self.slug, self.task_run_id = task, slug, task_run_id
        self.attempts = attempts
        """Tries so far, counting tries cut short by a crash."""
        self.env = env
        self.logger = logging.getLogger(f"durable.task.{task.name}")
        self._serializer = resolve_serializer(task.serializer)
        self._ended = False  # an ENDRUN signal fixed the state: no retry

    async def run(
        self,
        state: State,
        upstream: Sequence[tuple[Edge, State]],
        constants: Mapping[str, Any],
    ) -> State:
        """Take the task run from `state` as far as it can go."""
        with context.task_context(self._context_values()):
            state = self.check_upstream_finished(state, upstream)
            state = self.check_upstream_skipped(state, upstream)
            state = self.check_trigger(state, upstream)
            if not state.is_pending():
                return state
            inputs = self.gather_inputs(upstream, constants)
            while True:
                state = self.set_running(state)
                state = await self.run_body(state, inputs)
                state = self.check_for_retry(state)
                if not isinstance(state, Retrying):
                    return state
                if state.start_time is not None:
                    await self.env.time.sleep_until(state.start_time)

    # Steps -----------------------------------------------------------------------------
    def check_upstream_finished(
        self, state: State, upstream: Sequence[tuple[Edge, State]]
    ) -> State:
        """Stay Pending while an upstream task has not finished."""
        if state.is_pending() and not all(s.is_finished() for _, s in upstream):
            return Pending("Some upstream tasks have not finished.")
        return state

    def check_upstream_skipped(
        self, state: State, upstream: Sequence[tuple[Edge, State]]
    ) -> State:
        """Skip when an upstream task was skipped, unless the task opted out."""
        if not state.is_pending() or not self.task.skip_on_upstream_skip:
            return state
        if any(s.is_skipped() for _, s in upstream):
            return self.transition(state, Skipped("Upstream task was skipped."))
        return state

    def check_trigger(
        self, state: State, upstream: Sequence[tuple[Edge, State]]
    ) -> State:
        """Ask the task's trigger whether it may run, given its upstream states."""
        if not state.is_pending():
            return state
        try:
            ok = self.task.trigger(dict(upstream))
        except signals.Signal as signal:
            return self.transition(state, signal.state)
        except Exception as exc:  # noqa: BLE001 (the user's trigger failed)
            return self.transition(
                state, TriggerFailed(f"Trigger raised {exc!r}", result=exc)
            )
        if not ok:
            name = getattr(self.task.trigger, "__name__", "trigger")
            return self.transition(state, TriggerFailed(f"Trigger {name} was not met."))
        return state

    def gather_inputs(
        self, upstream: Sequence[tuple[Edge, State]], constants: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Bind upstream results and constants to the body's arguments."""
        inputs = dict(constants)
        for edge, upstream_state in upstream:
            if edge.key is not None:
                # An upstream without a result (Skipped, say) passes None, as in Prefect 1.
                value = upstream_state.result
                inputs[edge.key] = None if value is NoResult else value
        return inputs

    def set_running(self, state: State) -> State:
        """Count a new attempt and enter Running."""
        self.attempts += 1
        return self.transition(state, Running("Starting task run."))

    async def run_body(self, state: State, inputs: dict[str, Any]) -> State:
        """Call the user's code and turn whatever happens into a state."""
        if not state.is_running():
            return state
        capture = capture_prints(self.logger) if self.task.log_stdout else nullcontext()
        with capture, context.task_context(self._context_values()):
            kind, value = await self._call_body(inputs)
        if kind == "timeout":
            timeout = self.task.timeout
            return self.transition(state, TimedOut(f"Task timed out after {timeout}."))
        if kind == "signal":
            self._ended = isinstance(value, signals.ENDRUN)
            return self.transition(state, value.state)
        if kind == "error":
            new = Failed(f"Error during execution of task: {value!r}", result=value)
            return self.transition(state, new)
        return self.transition(state, Success("Task run succeeded.", result=value))

    def check_for_retry(self, state: State) -> State:
        """Turn a failure into Retrying while retries remain (and `retry_on` matches)."""
        task = self.task
        if self._ended or not state.is_failed() or self.attempts > task.max_retries:
            return state
        if task.retry_on and not isinstance(state.result, tuple(task.retry_on)):
            return state
        delay = task.retry_delay
        start = self.env.time.now() + delay if delay else None
        retrying = Retrying(
            f"Retrying task (after attempt {self.attempts} of {task.max_retries + 1}).",
            start_time=start,
            run_count=self.attempts,
        )
        return self.transition(state, retrying)

    # The one way a state changes --------------------------------------------------------
    def transition(self, old: State, new: State) -> State:
        """Run the handlers, stamp the state and queue its checkpoint (with its result).

        Result and state commit in one transaction: a task is never finished without its
        result. A result that cannot be serialized fails the task instead.
        """
        if self.task.state_handlers:
            new = call_handlers(self.task, self.task.state_handlers, old, new, logger)
        blob = self._result_blob(new)
        if isinstance(blob, SerializationError):
            new = Failed(str(blob), result=blob)
            blob = (PICKLE.name, dump_exception(blob))
        new.stamp(self.env.time.timestamp())
        self.env.store.record_task_state(
            self.env.run_id, self.task_run_id, as_transition(new),
            attempts=self.attempts, result=blob,
        )  # fmt: skip
        self._log_transition(new)
        return new

    def _result_blob(self, state: State) -> ResultBlob | SerializationError:
        if not state.has_result:
            return None
        value = state.result
        if isinstance(state, Failed):
            if isinstance(value, BaseException):
                return (PICKLE.name, dump_exception(value))
            return None
        if not isinstance(state, Success) or self.task.checkpoint is False:
            return None
        serializers = [self._serializer]
        error: SerializationError | None = None
        if isinstance(
            self.task, Parameter
        ):  # readable when it can be, pickled otherwise
            serializers = [JSON, PICKLE]
        for serializer in serializers:
            try:
                return (serializer.name, serializer.dumps(value))
            except Exception as exc:  # noqa: BLE001 (the user's value failed to pickle)
                error = SerializationError(
                    task_name=self.task.name,
                    type_name=type(value).__qualname__,
                    serializer=serializer.name,
                    reason=f"{type(exc).__name__}: {exc}",
                )
        return error

    def _log_transition(self, state: State) -> None:
        name = self.task.name
        if isinstance(state, Running):
            logger.info(
                "Task %r: Starting task run (attempt %d)...", name, self.attempts
            )
        elif isinstance(state, Retrying):
            logger.warning("Task %r: %s", name, state.message)
        elif state.is_finished():
            log = logger.error if state.is_failed() else logger.info
            log("Task %r: Finished task run with final state: %r", name, state.name)
            if state.is_failed() and state.message:
                logger.error("Task %r: %s", name, state.message)

    # Calling the body -------------------------------------------------------------------
    async def _call_body(self, inputs: dict[str, Any]) -> tuple[str, Any]:
        if self.task.timeout is None:
            return await self._guarded(inputs, abandonable=False)
        deadline = self.env.time.now() + self.task.timeout
        outcome: tuple[str, Any] = ("timeout", None)
        async with anyio.create_task_group() as group:
            body_scope = anyio.CancelScope()

            async def watch() -> None:
                await self.env.time.sleep_until(deadline)
                body_scope.cancel()

            group.start_soon(watch)
            with body_scope:
                outcome = await self._guarded(inputs, abandonable=True)
            group.cancel_scope.cancel()
        return outcome

    async def _guarded(
        self, inputs: dict[str, Any], *, abandonable: bool
    ) -> tuple[str, Any]:
        task = self.task
        try:
            value = await self.env.executor.call(
                task.run, inputs, is_async=task.is_async, abandonable=abandonable
            )
        except signals.Signal as signal:  # the user chose the state
            return ("signal", signal)
        except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 (user code)
            return ("error", exc)
        return ("value", value)

    def _context_values(self) -> dict[str, Any]:
        return {
            "task_name": self.task.name,
            "task_slug": self.slug,
            "task_tags": self.task.tags,
            "task_run_id": self.task_run_id,
            "map_index": None,
            "attempt": self.attempts,
            "task_run_count": self.attempts,
            "logger": self.logger,
        }
