"""Output caching: the validators, the cache check before the trigger, cache_result."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durable import Flow, Parameter, task
from durable.engine import cache_validators as cv
from durable.states import Cached, Failed, State, Success
from durable.store import Store
from durable.timesource import FakeTime
from tests.engine.helpers import history, rows, run

pytestmark = pytest.mark.anyio

HOUR = timedelta(hours=1)


def candidate(
    fake_time: FakeTime,
    *,
    inputs: dict[str, Any] | None = None,
    parameters: dict[str, Any] | None = None,
    expires_in: timedelta | None = HOUR,
) -> Cached:
    """A cached state as the engine builds one from a stored entry."""
    context: dict[str, Any] = {
        "hashed_inputs": cv.fingerprints(inputs),
        "hashed_parameters": cv.fingerprints(parameters),
    }
    if expires_in is not None:
        context["cached_result_expiration"] = (fake_time.now() + expires_in).timestamp()
    return Cached(context=context)


class TestValidators:
    def test_never_use_never_reuses(self, fake_time: FakeTime) -> None:
        with cv.validating_at(fake_time):
            assert cv.never_use(candidate(fake_time), {}, {}) is False

    def test_duration_only_reuses_until_expiration(self, fake_time: FakeTime) -> None:
        state = candidate(fake_time)
        with cv.validating_at(fake_time):
            assert cv.duration_only(state, {"x": 1}, {"p": 2})
            fake_time.advance(HOUR)
            assert not cv.duration_only(state, {}, {})

    def test_duration_only_accepts_a_state_without_expiration(
        self, fake_time: FakeTime
    ) -> None:
        with cv.validating_at(fake_time):
            assert cv.duration_only(candidate(fake_time, expires_in=None), {}, {})

    def test_all_inputs_compares_every_input(self, fake_time: FakeTime) -> None:
        state = candidate(fake_time, inputs={"x": 1, "y": [1, 2]})
        with cv.validating_at(fake_time):
            assert cv.all_inputs(state, {"x": 1, "y": [1, 2]}, {})
            assert not cv.all_inputs(state, {"x": 1, "y": [1, 3]}, {})
            assert not cv.all_inputs(state, {"x": 1}, {})
            fake_time.advance(HOUR)
            assert not cv.all_inputs(state, {"x": 1, "y": [1, 2]}, {})

    def test_all_parameters_compares_every_parameter(self, fake_time: FakeTime) -> None:
        state = candidate(fake_time, parameters={"n": 3, "name": "a"})
        with cv.validating_at(fake_time):
            assert cv.all_parameters(state, {"x": 99}, {"n": 3, "name": "a"})
            assert not cv.all_parameters(state, {}, {"n": 4, "name": "a"})

    def test_partial_inputs_only_compares_the_named_inputs(
        self, fake_time: FakeTime
    ) -> None:
        state = candidate(fake_time, inputs={"x": 1, "y": 2})
        validator = cv.partial_inputs_only(validate_on=["x"])
        with cv.validating_at(fake_time):
            assert validator(state, {"x": 1, "y": 999}, {})
            assert not validator(state, {"x": 2, "y": 2}, {})
            assert cv.partial_inputs_only()(state, {"x": 5}, {})
            fake_time.advance(HOUR)
            assert not validator(state, {"x": 1, "y": 2}, {})

    def test_partial_parameters_only_compares_the_named_parameters(
        self, fake_time: FakeTime
    ) -> None:
        state = candidate(fake_time, parameters={"a": 1, "b": 2})
        validator = cv.partial_parameters_only(validate_on=["a"])
        with cv.validating_at(fake_time):
            assert validator(state, {}, {"a": 1, "b": 3})
            assert not validator(state, {}, {"a": 2, "b": 2})
            assert cv.partial_parameters_only()(state, {}, {"a": 7})

    def test_an_unpicklable_value_never_matches(self, fake_time: FakeTime) -> None:
        lock = threading.Lock()
        state = candidate(fake_time, inputs={"x": lock})
        with cv.validating_at(fake_time):
            assert not cv.all_inputs(state, {"x": lock}, {})

    def test_fingerprints_are_computed_once_per_validation(
        self, fake_time: FakeTime
    ) -> None:
        value = list(range(10))
        with cv.validating_at(fake_time):
            first = cv.fingerprint(value)
            value.append(10)  # the memo is by identity, within one check only
            assert cv.fingerprint(value) == first
        assert cv.fingerprint(value) != first


def counted(calls: list[Any], **options: Any) -> Any:
    """A task that doubles its input and records each call of its body."""

    @task(**options)
    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    return double


def doubling_flow(name: str, calls: list[Any], **options: Any) -> tuple[Flow, Any]:
    double = counted(calls, **options)
    with Flow(name) as flow:
        result = double(Parameter("n", default=3))
    return flow, result


async def run_at(flow: Flow, db: Path, clock: FakeTime, **options: Any) -> State:
    return await run(flow, db, time=clock, **options)


class TestCacheResult:
    async def test_the_writing_run_is_cached_with_its_expiration(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, double = doubling_flow("f", calls, cache_for=HOUR)
        state = await run_at(flow, db, fake_time, run_id="r1")
        cached = state.result[double]
        assert isinstance(cached, Cached)
        assert cached.result == 6
        expiration = (fake_time.now() + HOUR).timestamp()
        assert cached.context["cached_result_expiration"] == expiration
        assert history(db, "r1", "double-1") == ["Running", "Cached"]
        assert rows(db, "SELECT cache_key, expires_at FROM cache") == [
            ("f/double-1", expiration)
        ]

    async def test_a_task_without_cache_for_stores_no_entry(self, db: Path) -> None:
        calls: list[int] = []
        flow, double = doubling_flow("f", calls)
        state = await run(flow, db)
        assert type(state.result[double]) is Success
        assert rows(db, "SELECT count(*) FROM cache") == [(0,)]

    async def test_an_unserializable_result_fails_the_task(self, db: Path) -> None:
        @task(cache_for=HOUR, checkpoint=False)
        def make_lock() -> Any:
            return threading.Lock()

        with Flow("f") as flow:
            made = make_lock()
        state = await run(flow, db)
        failed = state.result[made]
        assert isinstance(failed, Failed)
        assert "make_lock" in (failed.message or "")
        assert "cache_for" in (failed.message or "")
        assert rows(db, "SELECT count(*) FROM cache") == [(0,)]


class TestCheckCached:
    async def test_a_hit_skips_the_body_and_reuses_the_value(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, double = doubling_flow("f", calls, cache_for=HOUR)
        await run_at(flow, db, fake_time, run_id="r1")
        fake_time.advance(timedelta(minutes=59))
        state = await run_at(flow, db, fake_time, run_id="r2")
        assert calls == [3]
        reused = state.result[double]
        assert isinstance(reused, Cached)
        assert reused.result == 6
        assert "reused" in (reused.message or "")
        assert history(db, "r2", "double-1") == ["Cached"]

    async def test_an_expired_entry_is_not_used(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, _ = doubling_flow("f", calls, cache_for=HOUR)
        await run_at(flow, db, fake_time)
        fake_time.advance(HOUR)
        await run_at(flow, db, fake_time)
        assert calls == [3, 3]

    async def test_all_inputs_misses_on_other_inputs_and_hits_on_the_same(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, double = doubling_flow(
            "f", calls, cache_for=HOUR, cache_validator=cv.all_inputs
        )
        for n in (3, 4, 3, 4):
            state = await run_at(flow, db, fake_time, parameters={"n": n})
            assert state.result[double].result == n * 2
        assert calls == [3, 4]

    async def test_duration_only_ignores_inputs(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, double = doubling_flow("f", calls, cache_for=HOUR)
        await run_at(flow, db, fake_time, parameters={"n": 3})
        state = await run_at(flow, db, fake_time, parameters={"n": 4})
        assert state.result[double].result == 6  # Prefect 1's default does this too
        assert calls == [3]

    async def test_never_use_always_runs_the_body(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, _ = doubling_flow(
            "f", calls, cache_for=HOUR, cache_validator=cv.never_use
        )
        await run_at(flow, db, fake_time)
        await run_at(flow, db, fake_time)
        assert calls == [3, 3]

    async def test_a_cache_key_is_shared_across_flows(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        first, _ = doubling_flow("first", calls, cache_for=HOUR, cache_key="shared")
        second, double = doubling_flow(
            "second", calls, cache_for=HOUR, cache_key="shared"
        )
        await run_at(first, db, fake_time)
        state = await run_at(second, db, fake_time)
        assert calls == [3]
        assert isinstance(state.result[double], Cached)

    async def test_without_a_cache_key_flows_do_not_share(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        first, _ = doubling_flow("first", calls, cache_for=HOUR)
        second, _ = doubling_flow("second", calls, cache_for=HOUR)
        await run_at(first, db, fake_time)
        await run_at(second, db, fake_time)
        assert calls == [3, 3]

    async def test_a_task_in_the_same_run_sees_an_entry_just_written(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        double = counted(calls, cache_for=HOUR, cache_key="k")
        with Flow("f") as flow:
            first = double(3)
            second = double(3, upstream_tasks=[first])
        state = await run_at(flow, db, fake_time)
        assert calls == [3]
        assert state.result[second].result == 6

    async def test_the_cached_value_flows_downstream(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        double = counted(calls, cache_for=HOUR)

        @task
        def plus_one(x: int) -> int:
            return x + 1

        with Flow("f") as flow:
            after = plus_one(double(5))
        await run_at(flow, db, fake_time)
        state = await run_at(flow, db, fake_time)
        assert state.result[after].result == 11
        assert calls == [5]

    async def test_mapped_children_each_reuse_their_own_entry(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        double = counted(calls, cache_for=HOUR)
        with Flow("f") as flow:
            doubled = double.map([1, 2, 3])
        await run_at(flow, db, fake_time)
        state = await run_at(flow, db, fake_time)
        children = state.result[doubled].map_states
        assert [c.result for c in children] == [2, 4, 6]
        assert all(isinstance(c, Cached) for c in children)
        assert calls == [1, 2, 3]

    async def test_a_validator_that_raises_fails_the_task_run(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        def broken(state: Cached, inputs: Any, parameters: Any) -> bool:
            raise RuntimeError("bad validator")

        calls: list[int] = []
        flow, _ = doubling_flow("f", calls, cache_for=HOUR)
        await run_at(flow, db, fake_time)
        flow2, double = doubling_flow(
            "f", calls, cache_for=HOUR, cache_validator=broken
        )
        state = await run_at(flow2, db, fake_time)
        failed = state.result[double]
        assert isinstance(failed, Failed)
        assert "broken" in (failed.message or "")
        assert isinstance(failed.result, RuntimeError)

    async def test_the_cache_check_comes_before_the_trigger(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        double = counted(calls, cache_for=HOUR, cache_key="k")

        @task
        def fails() -> None:
            raise ValueError("upstream broke")

        with Flow("warm") as warm:
            double(4)
        with Flow("f") as flow:
            after_failure = double(4, upstream_tasks=[fails()])
        await run_at(warm, db, fake_time)
        state = await run_at(flow, db, fake_time)
        assert isinstance(state.result[after_failure], Cached)  # as Prefect 1.4
        assert calls == [4]


class TestDurability:
    async def test_cached_values_survive_a_new_store(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, double = doubling_flow("f", calls, cache_for=HOUR)
        await run_at(flow, db, fake_time)
        store = await Store.open(db)  # a fresh store, as a new process would open
        try:
            entries = await store.find_cache_entries(
                "f/double-1", -1, now=fake_time.timestamp()
            )
            assert len(entries) == 1
            state = await run_at(flow, db, fake_time, store=store)
        finally:
            await store.close()
        assert calls == [3]
        assert state.result[double].result == 6

    async def test_a_resumed_run_keeps_its_cached_task(
        self, db: Path, fake_time: FakeTime
    ) -> None:
        calls: list[int] = []
        flow, double = doubling_flow("f", calls, cache_for=HOUR)
        await run_at(flow, db, fake_time, run_id="r1")
        state = await run_at(flow, db, fake_time, run_id="r1")
        assert isinstance(state.result[double], Cached)
        assert state.result[double].result == 6
        assert calls == [3]
