"""Triggers: pure functions of upstream states that decide whether a task may run.

A trigger takes `{edge: state}` and returns True to run, or raises a signal: `TRIGGERFAIL`
(the task becomes TriggerFailed), `SKIP` or `PAUSE`. As in Prefect 1, `any_*` triggers pass
when there are no upstream tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from durable import signals
from durable.states import State

Trigger = Callable[[Mapping[Any, State]], bool]
"""What a trigger looks like: upstream states in, True or a signal out."""


def _states(upstream_states: Mapping[Any, State]) -> list[State]:
    # Mapped parents stand for their children, as in Prefect 1.
    expanded: list[State] = []
    for state in upstream_states.values():
        children = getattr(state, "map_states", None)
        expanded.extend(children if children else [state])
    return expanded


def all_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run when every upstream task succeeded (the default)."""
    if not all(s.is_successful() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_successful" but some of the upstream tasks failed.'
        )
    return True


def all_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run when every upstream task failed."""
    if not all(s.is_failed() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_failed" but some of the upstream tasks succeeded.'
        )
    return True


def all_finished(upstream_states: Mapping[Any, State]) -> bool:
    """Run once every upstream task finished, whatever its outcome."""
    if not all(s.is_finished() for s in _states(upstream_states)):
        raise signals.TRIGGERFAIL(
            'Trigger was "all_finished" but some of the upstream tasks were not finished.'
        )
    return True


always_run = all_finished
"""Prefect 1's alias of `all_finished`."""


def any_successful(upstream_states: Mapping[Any, State]) -> bool:
    """Run when at least one upstream task succeeded (or there are none)."""
    found = _states(upstream_states)
    if found and not any(s.is_successful() for s in found):
        raise signals.TRIGGERFAIL(
            'Trigger was "any_successful" but none of the upstream tasks succeeded.'
        )
    return True


def any_failed(upstream_states: Mapping[Any, State]) -> bool:
    """Run when at least one upstream task failed (or there are none)."""
    found = _states(upstream_states)
    if found and not any(s.is_failed() for s in found):
        raise signals.TRIGGERFAIL(
            'Trigger was "any_failed" but none of the upstream tasks failed.'
        )
    return True


def manual_only(upstream_states: Mapping[Any, State]) -> bool:
    """Never run on its own: pause until a person approves the task run."""
    from durable import context  # deferred: context imports nothing of triggers

    if context.get("resume"):
        return True
    raise signals.PAUSE('Trigger function is "manual_only"')


def not_all_skipped(upstream_states: Mapping[Any, State]) -> bool:
    """Run when the upstream tasks succeeded and not all of them were skipped."""
    found = _states(upstream_states)
    if found and all(s.is_skipped() for s in found):
        raise signals.SKIP("All upstream tasks were skipped")
    if not all(s.is_successful() for s in found):
        raise signals.TRIGGERFAIL(
            'Trigger was "not_all_skipped" but some of the upstream tasks failed.'
        )
    return True


def _bounds(
    count: int, at_least: float | None, at_most: float | None
) -> tuple[float, float]:
    # Values below 1 are fractions of the upstream count, as in Prefect 1.
    def resolve(value: float | None, default: float) -> float:
        if value is None:
            return default
        return value * count if 0 < value < 1 else value

    return resolve(at_least, 0), resolve(at_most, count)


def _some(name: str, pick: Callable[[State], bool], at_least: float | None,
          at_most: float | None) -> Trigger:  # fmt: skip
    def trigger(upstream_states: Mapping[Any, State]) -> bool:
        found = _states(upstream_states)
        low, high = _bounds(len(found), at_least, at_most)
        matched = sum(1 for s in found if pick(s))
        if not low <= matched <= high:
            raise signals.TRIGGERFAIL(
                f'Trigger was "{name}" with at_least={at_least}, at_most={at_most}, '
                f"but {matched} of {len(found)} upstream tasks matched."
            )
        return True

    trigger.__name__ = name
    return trigger


def some_successful(
    at_least: float | None = None, at_most: float | None = None
) -> Trigger:
    """Build a trigger: run when the count of successful upstreams is within bounds."""
    return _some("some_successful", State.is_successful, at_least, at_most)


def some_failed(at_least: float | None = None, at_most: float | None = None) -> Trigger:
    """Build a trigger: run when the count of failed upstreams is within bounds."""
    return _some("some_failed", State.is_failed, at_least, at_most)
