"""Signals: exceptions a task raises to choose its own state, with Prefect 1's names.

They derive from `BaseException` (as Prefect 1's did) so that a user's `except Exception`
cannot swallow them. Each carries the state it stands for in `.state`.
"""

from __future__ import annotations

from typing import Any, ClassVar

from durable import states
from durable.states import NoResult, State


class Signal(BaseException):
    """Base class of every signal; `state` is the state it asks for."""

    state_type: ClassVar[type[State]] = State

    def __init__(self, message: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(message, *args)
        kwargs.setdefault("result", self if self._carries_itself else NoResult)
        self.state: State = self.state_type(message, **kwargs)

    _carries_itself: ClassVar[bool] = False


class FAIL(Signal):
    """Fail the task run; its result is this signal."""

    state_type = states.Failed
    _carries_itself = True


class TRIGGERFAIL(FAIL):
    """The task's trigger was not met."""

    state_type = states.TriggerFailed


class VALIDATIONFAIL(FAIL):
    """A task's inputs or outputs failed validation."""


class SUCCESS(Signal):
    """Finish the task run successfully; pass the value as `result=`."""

    state_type = states.Success


class RETRY(Signal):
    """Retry the task run, even past `max_retries`."""

    state_type = states.Retrying
    _carries_itself = True


class SKIP(Signal):
    """Skip the task run; downstream tasks skip too unless they opt out."""

    state_type = states.Skipped


class PAUSE(Signal):
    """Pause the task run until it is approved."""

    state_type = states.Paused


class LOOP(Signal):
    """Finish this iteration and run the task again with `result=` as loop state."""

    state_type = states.Looped


class ENDRUN(Signal):
    """Stop processing the task run with exactly the state given."""

    def __init__(self, state: State) -> None:
        BaseException.__init__(self, state.message)
        self.state = state


def signal_from_state(state: State) -> type[Signal]:
    """Return the signal class that stands for a state (Prefect 1's helper)."""
    for cls in (TRIGGERFAIL, FAIL, RETRY, SKIP, PAUSE, LOOP, SUCCESS):
        if type(state) is cls.state_type:
            return cls
    raise ValueError(f"no signal stands for a {state.name} state")
