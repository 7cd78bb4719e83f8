"""Cache validators: decide whether a cached result may stand in for a task run.

Prefect 1's `prefect.engine.cache_validators`, with its signature: `validator(state,
inputs, parameters) -> bool`, where `state` is the `Cached` candidate, `inputs` the task
run's arguments and `parameters` the flow run's parameters. The candidate carries what was
recorded when the result was cached, in `state.context`:

- `cached_result_expiration`: Unix seconds after which the entry is stale;
- `hashed_inputs` and `hashed_parameters`: a fingerprint per name (`fingerprint(value)`).

Durable stores fingerprints rather than values (a cached entry must not keep every input a
task ever had), so validators compare fingerprints. The current time comes from the
engine's time source while it validates (`validating_at`), never from the system clock.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from durable.states import Cached, State
from durable.store.serializers import PICKLE
from durable.timesource import SYSTEM_TIME, TimeSource

Validator = Callable[[Cached, dict[str, Any], dict[str, Any]], bool]
"""`validator(state, inputs, parameters)`: whether the cached `state` may be reused."""

_time: ContextVar[TimeSource] = ContextVar("durable_cache_time", default=SYSTEM_TIME)
_digests: ContextVar[dict[int, tuple[Any, str]] | None] = ContextVar(
    "durable_cache_digests", default=None
)


@contextmanager
def validating_at(time: TimeSource) -> Iterator[None]:
    """Let validators read the time from `time` and share fingerprints inside the block.

    The engine checks several candidates against the same inputs: each input is
    fingerprinted once per block, not once per candidate.
    """
    time_token = _time.set(time)
    digest_token = _digests.set({})
    try:
        yield
    finally:
        _digests.reset(digest_token)
        _time.reset(time_token)


def fingerprint(value: Any) -> str:
    """Return a stable hash of a value: sha256 of its cloudpickle bytes (hex).

    A value that cannot be pickled gets a fingerprint of its own that matches nothing,
    so a validator that compares it never reuses a result by mistake.
    """
    memo = _digests.get()
    if memo is not None and id(value) in memo:
        return memo[id(value)][1]
    try:
        digest = hashlib.sha256(PICKLE.dumps(value)).hexdigest()
    except Exception:  # noqa: BLE001 (a user's value may fail to pickle any way)
        digest = f"unhashable-{uuid.uuid4().hex}"
    if memo is not None:
        memo[id(value)] = (value, digest)  # keeps the value alive, so its id stays its
    return digest


def fingerprints(values: Mapping[str, Any] | None) -> dict[str, str]:
    """Return the fingerprint of each value, by name."""
    return {key: fingerprint(value) for key, value in (values or {}).items()}


def _recorded(state: State, key: str) -> dict[str, str]:
    recorded = state.context.get(key)
    return dict(recorded) if isinstance(recorded, dict) else {}


def _only(hashes: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    wanted = set(names)
    return {key: value for key, value in hashes.items() if key in wanted}


def never_use(
    state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]
) -> bool:
    """Never reuse a cached result (the default for a task without `cache_for`)."""
    return False


def duration_only(
    state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]
) -> bool:
    """Reuse a cached result until it expires (the default for a task with `cache_for`)."""
    expiration = state.context.get("cached_result_expiration")
    if expiration is None:
        return True
    return bool(float(expiration) > _time.get().timestamp())


def all_inputs(
    state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]
) -> bool:
    """Reuse an unexpired result computed from the same inputs, all of them."""
    if not duration_only(state, inputs, parameters):
        return False
    return fingerprints(inputs) == _recorded(state, "hashed_inputs")


def all_parameters(
    state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]
) -> bool:
    """Reuse an unexpired result computed while the flow had the same parameters."""
    if not duration_only(state, inputs, parameters):
        return False
    return fingerprints(parameters) == _recorded(state, "hashed_parameters")


def partial_parameters_only(validate_on: Iterable[str] | None = None) -> Validator:
    """Return a validator that compares only the parameters named in `validate_on`.

    With `validate_on=None` every unexpired result is reused, as in Prefect 1.
    """
    return _partial("parameters", validate_on)


def partial_inputs_only(validate_on: Iterable[str] | None = None) -> Validator:
    """Return a validator that compares only the inputs named in `validate_on`.

    With `validate_on=None` every unexpired result is reused, as in Prefect 1.
    """
    return _partial("inputs", validate_on)


def _partial(kind: str, validate_on: Iterable[str] | None) -> Validator:
    names = None if validate_on is None else list(validate_on)

    def validator(
        state: Cached, inputs: dict[str, Any], parameters: dict[str, Any]
    ) -> bool:
        if not duration_only(state, inputs, parameters):
            return False
        if names is None:
            return True
        values = inputs if kind == "inputs" else parameters
        provided = fingerprints(_only_values(values, names))
        return provided == _only(_recorded(state, f"hashed_{kind}"), names)

    validator.__name__ = f"partial_{kind}_only"
    return validator


def _only_values(values: Mapping[str, Any] | None, names: list[str]) -> dict[str, Any]:
    return {key: value for key, value in (values or {}).items() if key in names}
