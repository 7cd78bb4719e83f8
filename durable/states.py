"""The state classes: what a task run or flow run is doing, with its message and result.

Data and predicates only, no I/O. The hierarchy is Prefect 1's:

```
State
├── Pending
│   └── Scheduled        start_time
│       ├── Paused       waits for approval (start_time None) or for a time
│       ├── Resume       approved: runs with context.resume set
│       └── Retrying     start_time, run_count
├── Running
│   └── Cancelling
└── Finished
    ├── Success
    │   ├── Cached
    │   ├── Mapped       map_states
    │   └── Skipped
    ├── Looped           loop_count
    ├── Cancelled
    └── Failed
        ├── TimedOut
        └── TriggerFailed
```

Skipped, Cached and Mapped count as successful for triggers, as in Prefect 1.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pendulum import DateTime

from durable.timesource import from_timestamp


class _NoResultType:
    """The result of a state that has none (distinct from a result that is None)."""

    _instance: ClassVar[_NoResultType | None] = None

    def __new__(cls) -> _NoResultType:  # noqa: PYI034 (a singleton, never subclassed)
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NoResult"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "NoResult"


NoResult = _NoResultType()
"""Marks a state without a result."""


class State:
    """Where a task run or flow run stands, with an optional message and result."""

    color: ClassVar[str] = "#000000"
    """The colour the TUI and CLI draw this state in."""

    __slots__ = ("_result", "_timestamp", "context", "message")

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        *,
        context: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        self.message = message
        """A human explanation of how the run got here."""
        self._result = result
        self.context = context or {}
        """Extra details kept with the state (JSON-serializable)."""
        self._timestamp = timestamp

    @property
    def result(self) -> Any:
        """The task's return value (or the exception, for a failure)."""
        result = self._result
        if isinstance(result, LazyResult):
            result = self._result = result.load()
        return result

    @result.setter
    def result(self, value: Any) -> None:
        self._result = value

    @property
    def has_result(self) -> bool:
        """Whether a result is attached (stored or in memory)."""
        return self._result is not NoResult

    @property
    def timestamp(self) -> DateTime | None:
        """When the state was entered (set when the engine records it)."""
        return None if self._timestamp is None else from_timestamp(self._timestamp)

    @property
    def timestamp_seconds(self) -> float | None:
        """When the state was entered, as Unix seconds."""
        return self._timestamp

    def stamp(self, seconds: float) -> None:
        """Record when the state was entered (the engine calls this once)."""
        self._timestamp = seconds

    @property
    def name(self) -> str:
        """The state's type name: `Success`, `Failed`, ..."""
        return type(self).__name__

    def __repr__(self) -> str:
        message = f"({self.message!r})" if self.message else ""
        return f"<{self.name}{message}>"

    def details(self) -> dict[str, Any]:
        """The type-specific fields to store beside the state (JSON-serializable)."""
        return dict(self.context) if self.context else {}

    # Predicates, as in Prefect 1.
    def is_pending(self) -> bool:
        """Waiting to run (Pending, Scheduled, Paused, Retrying)."""
        return isinstance(self, Pending)

    def is_scheduled(self) -> bool:
        """Waiting for a start time."""
        return isinstance(self, Scheduled)

    def is_paused(self) -> bool:
        """Waiting for approval or for a time."""
        return isinstance(self, Paused)

    def is_retrying(self) -> bool:
        """Failed and waiting to run again."""
        return isinstance(self, Retrying)

    def is_running(self) -> bool:
        """Running (or being cancelled)."""
        return isinstance(self, Running)

    def is_finished(self) -> bool:
        """In a terminal state: nothing more will happen unless restarted."""
        return isinstance(self, Finished)

    def is_successful(self) -> bool:
        """Succeeded (Success, Cached, Mapped, Skipped)."""
        return isinstance(self, Success)

    def is_failed(self) -> bool:
        """Failed (Failed, TimedOut, TriggerFailed)."""
        return isinstance(self, Failed)

    def is_skipped(self) -> bool:
        """Skipped on purpose."""
        return isinstance(self, Skipped)

    def is_cached(self) -> bool:
        """Finished by reusing an earlier result."""
        return isinstance(self, Cached)

    def is_mapped(self) -> bool:
        """A mapped parent whose children were created."""
        return isinstance(self, Mapped)

    def is_looped(self) -> bool:
        """Finished one iteration of a loop."""
        return isinstance(self, Looped)

    def is_cancelled(self) -> bool:
        """Cancelled by a user."""
        return isinstance(self, Cancelled)

    def is_meta_state(self) -> bool:
        """Always False: durable has no meta states (kept for Prefect 1 code)."""
        return False


class LazyResult:
    """A stored result that is read from the database the first time it is used."""

    __slots__ = ("loader",)

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        """A zero-argument callable that returns the value."""

    def load(self) -> Any:
        """Read the value."""
        return self.loader()


class Pending(State):
    """Waiting to run."""

    color = "#d3d3d3"
    __slots__ = ()


class Scheduled(Pending):
    """Waiting to run at `start_time`."""

    color = "#ffab00"
    __slots__ = ("start_time",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        *,
        start_time: DateTime | None = None,
        context: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        super().__init__(message, result, context=context, timestamp=timestamp)
        self.start_time = start_time
        """When to run; None means until someone resumes it."""

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.start_time is not None:
            details["start_time"] = self.start_time.timestamp()
        return details


class Paused(Scheduled):
    """Stopped until approved (or until `start_time`)."""

    color = "#99ccff"
    __slots__ = ()


class Resume(Scheduled):
    """Approved after a pause: runs next, with `context.resume` set."""

    color = "#ffab00"
    __slots__ = ()


class Retrying(Scheduled):
    """Failed; will run again at `start_time`."""

    color = "#ffa500"
    __slots__ = ("run_count",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        *,
        start_time: DateTime | None = None,
        run_count: int | None = None,
        context: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        super().__init__(
            message, result, start_time=start_time, context=context, timestamp=timestamp
        )
        self.run_count = run_count
        """How many times the task has run so far."""

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.run_count is not None:
            details["run_count"] = self.run_count
        return details


class Running(State):
    """Running now."""

    color = "#00ff00"
    __slots__ = ()


class Cancelling(Running):
    """Asked to stop; will become Cancelled."""

    color = "#eb7e2f"
    __slots__ = ()


class Finished(State):
    """Done: nothing more happens unless the run is restarted."""

    color = "#003ccb"
    __slots__ = ()


class Success(Finished):
    """Finished as hoped; `result` is the return value."""

    color = "#28a745"
    __slots__ = ()


class Cached(Success):
    """Finished by reusing an earlier result (or by storing one for later reuse)."""

    color = "#ffa500"
    __slots__ = ()

    @property
    def cached_result_expiration(self) -> DateTime | None:
        """When the cached value goes stale (Prefect 1's attribute)."""
        seconds = self.context.get("cached_result_expiration")
        return None if seconds is None else from_timestamp(seconds)

    @property
    def hashed_inputs(self) -> dict[str, str]:
        """A fingerprint of each input the value was computed from."""
        return dict(self.context.get("hashed_inputs") or {})

    @property
    def hashed_parameters(self) -> dict[str, str]:
        """A fingerprint of each flow parameter the value was computed under."""
        return dict(self.context.get("hashed_parameters") or {})


class Mapped(Success):
    """A mapped parent: its children are the task runs that did the work."""

    color = "#97fbff"
    __slots__ = ("map_states",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        *,
        map_states: list[State] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        super().__init__(message, result, context=context, timestamp=timestamp)
        self.map_states = map_states or []
        """The children's states, by map index."""

    @property
    def n_map_states(self) -> int:
        """How many children there are."""
        return len(self.map_states)


class Skipped(Success):
    """Not run, on purpose (a SKIP signal, or an upstream that was skipped)."""

    color = "#62757f"
    __slots__ = ()


class Looped(Finished):
    """Finished one iteration of a LOOP."""

    color = "#f0f0f0"
    __slots__ = ("loop_count",)

    def __init__(
        self,
        message: str | None = None,
        result: Any = NoResult,
        *,
        loop_count: int | None = None,
        context: dict[str, Any] | None = None,
        timestamp: float | None = None,
    ) -> None:
        super().__init__(message, result, context=context, timestamp=timestamp)
        self.loop_count = loop_count
        """How many iterations have finished."""

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.loop_count is not None:
            details["loop_count"] = self.loop_count
        return details


class Cancelled(Finished):
    """Stopped by a user."""

    color = "#bdbdbd"
    __slots__ = ()


class Failed(Finished):
    """Finished badly; `result` is the exception, if there was one."""

    color = "#eb0000"
    __slots__ = ()


class TimedOut(Failed):
    """Ran past its timeout and was stopped."""

    color = "#cc6600"
    __slots__ = ()


class TriggerFailed(Failed):
    """Not run because its trigger was not met."""

    color = "#c42800"
    __slots__ = ()


STATE_TYPES: dict[str, type[State]] = {
    cls.__name__: cls
    for cls in (
        State, Pending, Scheduled, Paused, Resume, Retrying, Running, Cancelling, Finished,
        Success, Cached, Mapped, Skipped, Looped, Cancelled, Failed, TimedOut,
        TriggerFailed,
    )
}  # fmt: skip
"""Every state class by name, to rebuild states read from the store."""


def state_from_record(
    name: str,
    message: str | None,
    timestamp: float | None,
    details: dict[str, Any] | None,
    result: Any = NoResult,
) -> State:
    """Rebuild a state from its stored name, message and details."""
    cls = STATE_TYPES.get(name, State)
    if not details and not issubclass(cls, Scheduled | Looped):
        return cls(message, result, timestamp=timestamp)  # the common case, on resume
    details = dict(details or {})
    kwargs: dict[str, Any] = {}
    if issubclass(cls, Scheduled):
        start = details.pop("start_time", None)
        kwargs["start_time"] = None if start is None else from_timestamp(start)
    if issubclass(cls, Retrying):
        kwargs["run_count"] = details.pop("run_count", None)
    if issubclass(cls, Looped):
        kwargs["loop_count"] = details.pop("loop_count", None)
    state = cls(message, result, context=details or None, timestamp=timestamp, **kwargs)
    return state
