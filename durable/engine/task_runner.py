"""TaskRunner: takes one task run as far as it can go, checkpointing every change.

A run is a short list of named steps (Prefect 1's TaskRunner pipeline): each takes the
current state and returns the next, unchanged when the step does not apply.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import anyio

from durable import context, redaction, signals
from durable.core.edge import Edge
from durable.core.parameter import Parameter
from durable.core.secret import Secret
from durable.core.task import Task
from durable.engine.caching import cache_result, check_cached
from durable.engine.limits import concurrency_slots
from durable.engine.runner import as_transition, call_handlers
from durable.errors import SerializationError
from durable.executors import Executor
from durable.log import capture_prints
from durable.states import (
    Failed,
    Looped,
    NoResult,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Skipped,
    State,
    Success,
    TimedOut,
    TriggerFailed,
)
from durable.store import Store
from durable.store.results import PendingFile
from durable.store.serializers import (
    JSON,
    PICKLE,
    StoredException,
    resolve_serializer,
)
from durable.store.serializers import dump_exception as pickle_exception
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
    limited_tags: frozenset[str] = frozenset()
    """Tags with a concurrency limit (read when the flow run started)."""


@functools.cache
def task_logger(name: str) -> logging.Logger:
    """Return the logger of a task's runs (cached: this runs for every task run)."""
    return logging.getLogger(f"durable.task.{name}")


def is_waiting_for_approval(state: State) -> bool:
    """Whether a task run is paused until someone approves it."""
    return isinstance(state, Paused) and state.start_time is None


class TaskRunner:
    """Runs one task run: upstream checks, trigger, body with retries, checkpoints."""

    def __init__(
        self, task: Task, slug: str, task_run_id: str, attempts: int,
        env: RunEnvironment, map_index: int = -1,
    ) -> None:  # fmt: skip
        self.task, self.slug, self.task_run_id = task, slug, task_run_id
        self.map_index = map_index
        """The child's index for a mapped child, -1 otherwise."""
        self.display_name = task.name if map_index < 0 else f"{task.name}[{map_index}]"
        """How log lines name the task run."""
        self.attempts = attempts
        """Tries so far, counting tries cut short by a crash."""
        self.env = env
        self.resumed = False
        """Whether the run was approved after a pause (`context.resume`)."""
        self.loop_count = 0
        """LOOP iterations finished so far."""
        self.loop_result: Any = None
        """The result the last LOOP iteration passed on."""
        self.logger = task_logger(task.name)
        self._serializer = resolve_serializer(task.serializer)
        self._ended = False  # an ENDRUN signal fixed the state: no retry
        self._round_start = 0  # attempts made before this LOOP round began

    async def run(
        self,
        state: State,
        upstream: Sequence[tuple[Edge, State]],
        constants: Mapping[str, Any],
    ) -> State:
        """Take the task run from `state` as far as it can go."""
        if is_waiting_for_approval(state):
            return state
        state = self.restore(state)
        if isinstance(state, Retrying) and state.start_time is not None:
            await self.env.time.sleep_until(state.start_time)  # a resumed retry's delay
        with context.task_context(self._context_values()):
            state = self.check_upstream_finished(state, upstream)
            state = self.check_upstream_skipped(state, upstream)
            state = await check_cached(self, state, upstream, constants)
            state = self.check_trigger(state, upstream)
            if not state.is_pending() or is_waiting_for_approval(state):
                return state
            inputs = self.gather_inputs(upstream, constants)
            state = self.set_task_run_name(state, inputs)
            if not state.is_pending():
                return state
            return await self.run_until_final(state, inputs)

    async def run_until_final(self, state: State, inputs: dict[str, Any]) -> State:
        """Run the body again and again through retries, loops and timed pauses."""
        while True:
            # Untagged flows (the usual case) skip the slot machinery altogether.
            slots = (
                concurrency_slots(
                    self.env, self.task.name, self.task.tags, self.task_run_id
                )
                if self.env.limited_tags
                else nullcontext()
            )
            async with slots:  # of each limited tag, for this attempt
                state = self.set_running(state)
                state = await self.run_body(state, inputs)
            state = self.check_for_retry(state)
            if isinstance(state, Looped):
                self.loop_count, self.loop_result = state.loop_count or 0, state.result
                self._round_start = self.attempts
                continue
            if is_waiting_for_approval(state) or not isinstance(
                state, Retrying | Paused
            ):
                return state
            if state.start_time is not None:  # a retry's delay, or a timed pause
                await self.env.time.sleep_until(state.start_time)
            self.resumed = self.resumed or isinstance(state, Paused)

    # Steps -----------------------------------------------------------------------------
    def restore(self, state: State) -> State:
        """Pick up where a stored state left off: an approval, or a loop's last round."""
        if isinstance(state, Resume):
            self.resumed = True
        if isinstance(state, Looped):
            self.loop_count, self.loop_result = state.loop_count or 0, state.result
            self._round_start = self.attempts
            return Pending(f"Resuming loop after iteration {self.loop_count}.")
        return state

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

    def set_task_run_name(self, state: State, inputs: Mapping[str, Any]) -> State:
        """Name the task run from the task's `task_run_name` template or callable.

        The template is filled from the parameters, the context and the task's inputs
        (later wins), as in Prefect 1.
        """
        template = self.task.task_run_name
        if template is None:
            return state
        values = {**context.get("parameters", {}), **context.to_dict(), **inputs}
        try:
            name = str(
                template(**values) if callable(template) else template.format(**values)
            )
        except Exception as exc:  # noqa: BLE001 (the user's template or callable failed)
            message = f"Cannot fill task_run_name {template!r}: {exc!r}"
            return self.transition(state, Failed(message, result=exc))
        if redaction.ACTIVE:  # a template may name a secret input
            name = redaction.redact(name)
        self.display_name = name
        self.env.store.name_task_run(self.task_run_id, name)
        return state

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
            new = value.state
            if isinstance(new, Looped):
                new.loop_count = self.loop_count + 1
            return await self.transition_with_result(state, new)
        if kind == "error":
            new = Failed(f"Error during execution of task: {value!r}", result=value)
            return self.transition(state, new)
        new = await cache_result(self, value, inputs)
        return await self.transition_with_result(state, new)

    def check_for_retry(self, state: State) -> State:
        """Turn a failure into Retrying while retries remain (and `retry_on` matches)."""
        task = self.task
        tries = self.attempts - self._round_start  # retries are counted per LOOP round
        if self._ended or not state.is_failed() or tries > task.max_retries:
            return state
        if task.retry_on and not isinstance(state.result, tuple(task.retry_on)):
            return state
        delay = task.retry_delay
        start = self.env.time.now() + delay if delay else None
        retrying = Retrying(
            f"Retrying task (after attempt {tries} of {task.max_retries + 1}).",
            start_time=start,
            run_count=self.attempts,
        )
        return self.transition(state, retrying)

    # The one way a state changes --------------------------------------------------------
    def transition(self, old: State, new: State) -> State:
        """Run the handlers, stamp the state and queue its checkpoint (with its result).

        Result and state commit in one transaction: a task is never finished without its
        result. A result that cannot be serialized fails the task instead. A result large
        enough for a file is fsynced here, blocking the event loop: the paths that
        carry a body's value use `transition_with_result`, which does that off the loop.
        """
        new, blob = self._handle(old, new)
        if isinstance(blob, PendingFile):
            blob = self._persist(new, blob)
        return self._record(new, blob)

    async def transition_with_result(self, old: State, new: State) -> State:
        """`transition` for a state carrying a value: its file is fsynced off the loop.

        The file (a result over the threshold) is durable under its final name before
        its checkpoint is even queued, so no commit can name a file that a crash could
        lose; other tasks run on while it syncs.
        """
        new, blob = self._handle(old, new)
        if isinstance(blob, PendingFile):
            blob = await anyio.to_thread.run_sync(self._persist, new, blob)
        return self._record(new, blob)

    def _handle(
        self, old: State, new: State
    ) -> tuple[State, ResultBlob | PendingFile | SerializationError]:
        if self.task.state_handlers:
            new = call_handlers(self.task, self.task.state_handlers, old, new, logger)
        return new, self._result_blob(new)

    def _record(self, new: State, blob: ResultBlob | SerializationError) -> State:
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

    def _persist(
        self, state: State, pending: PendingFile
    ) -> ResultBlob | SerializationError:
        if redaction.ACTIVE and redaction.file_leaks(pending.temporary):
            pending.discard()
            return redaction.refused_result(
                self.task.name, state.result, pending.serializer
            )
        try:
            return pending.persist()
        except OSError as exc:  # a full or failing disk fails the task, not the run
            return SerializationError(
                task_name=self.task.name,
                type_name=type(state.result).__qualname__,
                serializer=pending.serializer,
                reason=f"cannot write its result file {str(pending.path)!r}: {exc}",
            )

    def _result_blob(
        self, state: State
    ) -> ResultBlob | PendingFile | SerializationError:
        if not state.has_result:
            return None
        value = state.result
        if isinstance(state, Failed):
            if isinstance(value, BaseException):
                return (PICKLE.name, dump_exception(value))
            return None
        if isinstance(self.task, Secret):
            return None  # never stored, whatever `checkpoint` says
        # A loop's result is kept even without checkpointing: resume continues from it.
        checkpointed = isinstance(state, Success) and self.task.checkpoint is not False
        if not (checkpointed or isinstance(state, Looped)):
            return None
        serializers = [self._serializer]
        error: SerializationError | None = None
        if isinstance(
            self.task, Parameter
        ):  # readable when it can be, pickled otherwise
            serializers = [JSON, PICKLE]
        files = self.env.store.result_files
        for serializer in serializers:
            try:  # inline bytes, or a file for a result over the threshold
                blob = files.serialize(serializer, value, stem=self.task_run_id)
            except Exception as exc:  # noqa: BLE001 (the user's value failed to pickle)
                error = SerializationError(
                    task_name=self.task.name,
                    type_name=type(value).__qualname__,
                    serializer=serializer.name,
                    reason=f"{type(exc).__name__}: {exc}",
                )
                continue
            inline = blob[1] if isinstance(blob, tuple) else b""  # files: in _persist
            if redaction.ACTIVE and redaction.leaks(inline):
                return redaction.refused_result(self.task.name, value, serializer.name)
            return blob
        return error

    def _log_transition(self, state: State) -> None:
        name = self.display_name
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
        except KeyboardInterrupt:
            raise  # as Ctrl-C: the run stops, resumable (docs/decisions.md)
        except BaseException as exc:
            # A timeout's (or the run's) cancellation passes on; a CancelledError or
            # other BaseException the body raised itself fails the task run, rather
            # than escaping the run and leaving it Running.
            if anyio.current_effective_deadline() == float("-inf"):
                raise
            return ("error", exc)
        return ("value", value)

    def _context_values(self) -> dict[str, Any]:
        return {
            "task_name": self.task.name,
            "task_slug": self.slug,
            "task_tags": self.task.tags,
            "task_run_id": self.task_run_id,
            "map_index": None if self.map_index < 0 else self.map_index,
            "attempt": self.attempts,
            "task_run_count": self.attempts,
            "resume": self.resumed,
            "task_loop_count": self.loop_count + 1,
            "task_loop_result": self.loop_result,
            "logger": self.logger,
            "log_stdout": self.task.log_stdout,  # process and Dask bodies capture there
        }


def dump_exception(exc: BaseException) -> bytes:
    """Pickle a task's exception; one that holds a secret's value as a redacted stand-in."""
    data = pickle_exception(exc)
    if redaction.ACTIVE and redaction.leaks(data):
        stand_in = StoredException.from_exception(exc)
        data = PICKLE.dumps(StoredException(
            stand_in.type_name, redaction.redact(stand_in.message),
            redaction.redact(stand_in.traceback_text),
        ))  # fmt: skip
    return data
