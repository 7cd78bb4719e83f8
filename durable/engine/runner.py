"""The one path every state change takes: handlers, timestamp, checkpoint, console line."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from durable import redaction
from durable.states import Failed, State
from durable.store import Store, Transition

StateHandler = Callable[[Any, State, State], State | None]
"""`handler(task_or_flow, old_state, new_state)`; may return a state to use instead."""


def call_handlers(
    owner: Any, handlers: Sequence[StateHandler], old: State, new: State,
    logger: logging.Logger,
) -> State:  # fmt: skip
    """Run state handlers in order, each seeing the state the previous one returned.

    A handler that raises turns the transition into a Failed naming the handler and the
    error: never silently ignored, never retried.
    """
    for handler in handlers:
        try:
            replaced = handler(owner, old, new)
        except Exception as exc:  # noqa: BLE001 (the user's handler failed)
            name = getattr(handler, "__qualname__", repr(handler))
            logger.error("state handler %s of %r raised %r", name, owner, exc)
            return Failed(
                f"State handler {name} raised {type(exc).__name__}: {exc}", result=exc
            )
        if replaced is not None:
            new = replaced
    return new


def as_transition(state: State) -> Transition:
    """Describe a stamped state for the store."""
    assert state.timestamp_seconds is not None, "stamp the state before recording it"
    message, details = state.message, state.details() or None
    if redaction.ACTIVE:  # a secret's value never reaches the states table
        message = None if message is None else redaction.redact(message)
        if details is not None and redaction.leaks(json.dumps(details, default=repr)):
            details = json.loads(redaction.redact(json.dumps(details, default=repr)))
    return Transition(
        name=state.name,
        message=message,
        timestamp=state.timestamp_seconds,
        details=details,
        finished=state.is_finished(),
    )


def record_flow_state(store: Store, run_id: str, state: State) -> None:
    """Queue a flow run's new state for the store."""
    store.record_flow_run_state(run_id, as_transition(state))
