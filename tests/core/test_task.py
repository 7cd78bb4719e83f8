"""Tasks: options and their checks, `@task`, async detection, binding and copying."""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from durable import states, triggers
from durable.core.edge import Edge
from durable.core.flow import Flow
from durable.core.options import as_timedelta, failure_handler, run_signature
from durable.core.task import Constant, FunctionTask, GetItem, Task, task
from durable.errors import ConfigurationError


@task
def add(x: int, y: int = 10) -> int:
    return x + y


@task
def pair(x: int) -> tuple[int, int]:
    return x, x + 1


@task(name="renamed", max_retries=2, retry_delay=5, tags=["io"])
def with_options() -> None:
    return None


@task
async def fetch(url: str) -> str:
    return url.upper()


class Multiply(Task):
    def run(self, x: int, y: int) -> int:
        return x * y


class TestDefaults:
    def test_a_plain_task_has_prefects_defaults(self) -> None:
        t = Task()
        assert t.name == "Task"
        assert t.slug is None
        assert t.tags == set()
        assert t.max_retries == 0
        assert t.retry_delay is None
        assert t.retry_on is None
        assert t.timeout is None
        assert t.trigger is triggers.all_successful
        assert t.skip_on_upstream_skip is True
        assert t.checkpoint is None
        assert t.state_handlers == []
        assert t.log_stdout is False
        assert t.nout is None
        assert t.serializer is None

    def test_the_base_run_does_nothing(self) -> None:
        assert Task().run() is None

    def test_a_subclass_is_named_after_its_class(self) -> None:
        assert Multiply().name == "Multiply"
        assert Multiply(name="times").name == "times"

    def test_tasks_compare_and_hash_by_identity(self) -> None:
        a, b = Task(name="same"), Task(name="same")
        assert a != b
        assert len({a, b}) == 2
        assert repr(a) == "<Task: same>"

    def test_cache_and_result_options_are_stored(self) -> None:
        def validator(*args: Any) -> bool:
            return True

        t = Task(
            cache_for=60,
            cache_validator=validator,
            cache_key="k",
            result="somewhere",
            target="out.txt",
            task_run_name="run-{x}",
            checkpoint=False,
            log_stdout=True,
        )
        assert t.cache_for == timedelta(seconds=60)
        assert t.cache_validator is validator
        assert (t.cache_key, t.result, t.target) == ("k", "somewhere", "out.txt")
        assert t.task_run_name == "run-{x}"
        assert t.checkpoint is False
        assert t.log_stdout is True


class TestOptionChecks:
    def test_tags_given_as_a_string_are_refused(self) -> None:
        with pytest.raises(TypeError, match="not the string 'io'"):
            Task(tags="io")

    def test_tags_become_a_set(self) -> None:
        assert Task(tags=["a", "b", "a"]).tags == {"a", "b"}

    def test_retries_need_a_retry_delay(self) -> None:
        with pytest.raises(ConfigurationError, match="no retry_delay"):
            Task(max_retries=2)

    def test_a_retry_delay_needs_retries(self) -> None:
        with pytest.raises(ConfigurationError, match="no max_retries"):
            Task(retry_delay=5)

    def test_retry_on_needs_retries(self) -> None:
        with pytest.raises(ConfigurationError, match="retry_on but no max_retries"):
            Task(retry_on=ValueError)

    def test_retry_on_must_hold_exception_types(self) -> None:
        with pytest.raises(TypeError, match="exception types"):
            Task(max_retries=1, retry_delay=1, retry_on=[ValueError, "oops"])  # type: ignore[list-item]

    def test_retry_on_becomes_a_tuple_of_types(self) -> None:
        t = Task(max_retries=1, retry_delay=1, retry_on=ValueError)
        assert t.retry_on == (ValueError,)
        t = Task(max_retries=1, retry_delay=1, retry_on=[KeyError, OSError])
        assert t.retry_on == (KeyError, OSError)

    @pytest.mark.parametrize("count", [-1, 1.5, True])
    def test_max_retries_must_be_a_non_negative_int(self, count: Any) -> None:
        with pytest.raises(ConfigurationError, match="max_retries"):
            Task(max_retries=count, retry_delay=1)

    def test_retry_delay_and_timeout_take_seconds_or_timedeltas(self) -> None:
        t = Task(max_retries=1, retry_delay=2.5, timeout=timedelta(minutes=1))
        assert t.retry_delay == timedelta(seconds=2.5)
        assert t.timeout == timedelta(minutes=1)
        assert Task(timeout=30).timeout == timedelta(seconds=30)

    def test_a_zero_timeout_means_no_timeout(self) -> None:
        assert Task(timeout=0).timeout is None

    @pytest.mark.parametrize("value", [-1, "10", True, [1]])
    def test_bad_timeouts_are_refused(self, value: Any) -> None:
        with pytest.raises(ConfigurationError, match="timeout"):
            Task(timeout=value)

    def test_serializer_names_are_checked(self) -> None:
        assert Task(serializer="json").serializer == "json"
        with pytest.raises(ConfigurationError, match="Unknown serializer 'yaml'"):
            Task(serializer="yaml")

    def test_a_serializer_object_is_stored_as_given(self) -> None:
        class Upper:
            name = "upper"

            def dumps(self, value: Any) -> bytes:
                return str(value).upper().encode()

            def loads(self, data: bytes) -> Any:
                return data.decode()

        custom = Upper()
        assert Task(serializer=custom).serializer is custom


class TestAsTimedelta:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (None, None),
            (0, timedelta(0)),
            (90, timedelta(seconds=90)),
            (0.5, timedelta(milliseconds=500)),
            (timedelta(hours=1), timedelta(hours=1)),
        ],
    )
    def test_accepts_seconds_and_timedeltas(
        self, value: float | timedelta | None, expected: timedelta | None
    ) -> None:
        assert as_timedelta(value, "cache_for") == expected

    @pytest.mark.parametrize("value", [-5, timedelta(seconds=-1), "5", False])
    def test_refuses_negatives_and_other_types_naming_the_option(
        self, value: Any
    ) -> None:
        with pytest.raises(ConfigurationError, match="cache_for"):
            as_timedelta(value, "cache_for")


class TestRunSignature:
    def test_star_args_are_refused(self) -> None:
        class Star(Task):
            def run(self, *values: int) -> None:
                return None

        with pytest.raises(ConfigurationError, match=r"may not take \*values"):
            Star()

    def test_positional_only_arguments_are_refused(self) -> None:
        def positional(x: int, /) -> int:
            return x

        with pytest.raises(ConfigurationError, match="positional-only argument 'x'"):
            task(positional)

    @pytest.mark.parametrize(
        ("body", "name"),
        [
            (lambda upstream_tasks: None, "upstream_tasks"),
            (lambda mapped: None, "mapped"),
            (lambda task_args: None, "task_args"),
            (lambda flow: None, "flow"),
        ],
    )
    def test_reserved_argument_names_are_refused(
        self, body: Callable[..., None], name: str
    ) -> None:
        with pytest.raises(ConfigurationError, match=f"named {name}; these keywords"):
            task(body)

    def test_keyword_variadics_are_allowed(self) -> None:
        @task
        def collect(**values: int) -> dict[str, int]:
            return values

        assert collect.run(a=1) == {"a": 1}

    def test_the_signature_is_cached_per_function(self) -> None:
        assert run_signature(Multiply()) is run_signature(Multiply())
        assert list(run_signature(Multiply()).parameters) == ["x", "y"]


class TestNout:
    def test_nout_is_inferred_from_a_tuple_annotation(self) -> None:
        assert pair.nout == 2

    def test_nout_is_inferred_from_typing_tuple(self) -> None:
        def three() -> typing.Tuple[int, str, bytes]:  # noqa: UP006 (the old spelling)
            return 1, "", b""

        assert task(three).nout == 3

    def test_variadic_tuples_and_other_types_give_no_nout(self) -> None:
        def many() -> tuple[int, ...]:
            return ()

        assert task(many).nout is None
        assert add.nout is None

    def test_an_explicit_nout_wins(self) -> None:
        assert task(nout=4)(pair.fn).nout == 4


class TestDecorator:
    def test_bare_decorator_builds_a_function_task(self) -> None:
        assert isinstance(add, FunctionTask)
        assert add.name == "add"
        assert add.run(1, 2) == 3
        assert add.fn(1) == 11

    def test_run_keeps_the_functions_signature(self) -> None:
        assert str(run_signature(add)) == "(x: 'int', y: 'int' = 10) -> 'int'"

    def test_decorator_options_reach_the_task(self) -> None:
        assert with_options.name == "renamed"
        assert with_options.max_retries == 2
        assert with_options.retry_delay == timedelta(seconds=5)
        assert with_options.tags == {"io"}

    def test_empty_parentheses_work_too(self) -> None:
        @task()
        def nothing() -> None:
            return None

        assert nothing.name == "nothing"

    def test_a_non_callable_is_refused(self) -> None:
        with pytest.raises(TypeError, match="needs a function"):
            FunctionTask(42)  # type: ignore[arg-type]


class TestAsync:
    def test_async_functions_make_async_tasks(self) -> None:
        assert fetch.is_async
        assert not add.is_async

    def test_async_run_methods_make_async_tasks(self) -> None:
        class Wait(Task):
            async def run(self) -> int:
                return 1

        assert Wait().is_async

    @pytest.mark.anyio
    async def test_an_async_run_can_be_awaited(self) -> None:
        assert await fetch.run("a") == "A"


class TestOnFailure:
    def test_on_failure_becomes_a_state_handler_for_failed_states(self) -> None:
        seen: list[tuple[Task, states.State]] = []
        t = Task(on_failure=lambda t, s: seen.append((t, s)))
        (handler,) = t.state_handlers
        running, failed = states.Running(), states.Failed("boom")
        assert handler(t, states.Pending(), running) is running
        assert seen == []
        assert handler(t, running, failed) is failed
        assert seen == [(t, failed)]

    def test_the_failure_handler_follows_user_state_handlers(self) -> None:
        def mine(t: Task, old: states.State, new: states.State) -> None:
            return None

        t = Task(state_handlers=[mine], on_failure=lambda t, s: None)
        assert t.state_handlers[0] is mine
        assert len(t.state_handlers) == 2

    def test_failure_handler_passes_its_owner_through(self) -> None:
        owners: list[str] = []

        def record(owner: str, state: states.State) -> None:
            owners.append(owner)

        handler = failure_handler(record)
        handler("flow", states.Running(), states.TimedOut())
        assert owners == ["flow"]


class TestCopy:
    def test_a_copy_is_a_new_task_with_the_same_options(self) -> None:
        copy = with_options.copy()
        assert copy is not with_options
        assert (copy.name, copy.tags, copy.max_retries) == ("renamed", {"io"}, 2)
        copy.tags.add("more")
        assert with_options.tags == {"io"}

    def test_task_args_are_set_and_converted(self) -> None:
        copy = add.copy(name="plus", timeout=5, tags=["x"])
        assert copy.name == "plus"
        assert copy.timeout == timedelta(seconds=5)
        assert copy.tags == {"x"}
        assert add.name == "add"

    def test_unknown_task_args_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="no attribute 'colour'"):
            add.copy(colour="red")

    def test_task_args_are_checked_like_options(self) -> None:
        with pytest.raises(ConfigurationError, match="no retry_delay"):
            add.copy(max_retries=3)


class TestCalling:
    def test_calling_outside_a_flow_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="Could not infer an active Flow"):
            add(1, 2)

    def test_calling_with_flow_works_outside_the_block(self) -> None:
        flow = Flow("explicit")
        result = add(1, flow=flow)
        assert result in flow.tasks
        assert flow.constants[result] == {"x": 1}

    def test_calling_returns_a_bound_copy(self) -> None:
        with Flow("f") as flow:
            result = add(1, 2)
        assert result is not add
        assert add not in flow.tasks
        assert flow.constants[result] == {"x": 1, "y": 2}

    def test_arguments_bind_like_a_function_call(self) -> None:
        with Flow("f") as flow:
            first = Multiply()(2, y=3)
            second = Multiply()(y=4, x=5)
        assert flow.constants[first] == {"x": 2, "y": 3}
        assert flow.constants[second] == {"x": 5, "y": 4}

    def test_defaults_that_are_not_passed_are_not_recorded(self) -> None:
        with Flow("f") as flow:
            result = add(1)
        assert flow.constants[result] == {"x": 1}

    def test_tasks_become_keyed_edges_and_values_constants(self) -> None:
        with Flow("f") as flow:
            one = add(1)
            two = add(one, y=[1, 2])
        assert flow.edges_to(two) == {Edge(one, two, key="x")}
        assert flow.constants[two] == {"y": [1, 2]}

    @pytest.mark.parametrize(
        ("args", "kwargs", "problem"),
        [
            ((1, 2, 3), {}, "too many positional arguments"),
            ((1,), {"z": 2}, "unexpected keyword argument 'z'"),
            ((), {"y": 2}, "missing a required argument: 'x'"),
            ((1,), {"x": 2}, "multiple values for argument 'x'"),
        ],
    )
    def test_bad_arguments_are_refused_naming_the_task(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], problem: str
    ) -> None:
        with Flow("f"), pytest.raises(ConfigurationError) as caught:
            add(*args, **kwargs)
        assert "Task 'add'" in str(caught.value)
        assert problem in str(caught.value)

    def test_keyword_variadics_bind_each_name(self) -> None:
        @task
        def collect(first: int, **rest: int) -> int:
            return first

        with Flow("f") as flow:
            source = add(1)
            result = collect(1, b=source, c=3)
        assert flow.constants[result] == {"first": 1, "c": 3}
        assert flow.edges_to(result) == {Edge(source, result, key="b")}

    def test_upstream_tasks_make_edges_without_keys(self) -> None:
        with Flow("f") as flow:
            first = Task(name="first")(upstream_tasks=[])
            second = add(1, upstream_tasks=[first])
        assert flow.edges_to(second) == {Edge(first, second)}

    def test_task_args_apply_to_the_copy(self) -> None:
        with Flow("f"):
            result = add(1, task_args={"name": "special", "tags": ["t"]})
        assert (result.name, result.tags) == ("special", {"t"})
        assert (add.name, add.tags) == ("add", set())

    def test_bind_binds_the_task_itself(self) -> None:
        t = Multiply()
        with Flow("f") as flow:
            assert t.bind(1, 2) is t
        assert flow.constants[t] == {"x": 1, "y": 2}


class TestGetItem:
    def test_indexing_builds_a_getitem_task(self) -> None:
        with Flow("f") as flow:
            whole = pair(1)
            item = whole["key"]
        assert isinstance(item, GetItem)
        assert item.name == "pair['key']"
        assert flow.edges_to(item) == {Edge(whole, item, key="task_result")}
        assert flow.constants[item] == {"key": "key"}
        assert item.run({"key": 7}, "key") == 7

    def test_indexing_by_a_task_makes_an_edge(self) -> None:
        with Flow("f") as flow:
            whole, index = pair(1), add(0)
            item = whole[index]
        assert item.name == "pair[add]"
        assert Edge(index, item, key="key") in flow.edges_to(item)

    def test_getitem_inherits_checkpointing_and_serializer(self) -> None:
        source = Task(checkpoint=False, serializer="json")
        with Flow("f"):
            item = source()[0]
        assert item.checkpoint is False
        assert item.serializer == "json"

    def test_a_task_with_nout_unpacks(self) -> None:
        with Flow("f") as flow:
            first, second = pair(1)
        assert isinstance(first, GetItem)
        assert flow.constants[first] == {"key": 0}
        assert flow.constants[second] == {"key": 1}
        assert flow.slugs[first] == "pair[0]-1"

    def test_a_task_without_nout_is_not_iterable(self) -> None:
        with Flow("f"), pytest.raises(TypeError, match="'add' is not iterable"):
            _first, _second = add(1)


class TestMap:
    def test_map_makes_mapped_edges(self) -> None:
        with Flow("f") as flow:
            numbers = Task(name="numbers")()
            mapped = add.map(numbers)
        assert flow.edges_to(mapped) == {Edge(numbers, mapped, key="x", mapped=True)}

    def test_unmapped_values_stay_constants_and_plain_edges(self) -> None:
        from durable.core.edge import unmapped

        with Flow("f") as flow:
            numbers, offset = Task(name="numbers")(), Task(name="offset")()
            mapped = Multiply().map(numbers, unmapped(offset))
            shifted = add.map(numbers, y=unmapped(5))
        assert Edge(offset, mapped, key="y") in flow.edges_to(mapped)
        assert flow.constants[shifted] == {"y": 5}

    def test_mapped_plain_values_become_constant_tasks(self) -> None:
        with Flow("f") as flow:
            mapped = add.map([1, 2, 3])
        (edge,) = flow.edges_to(mapped)
        assert isinstance(edge.upstream, Constant)
        assert edge.upstream.run() == [1, 2, 3]
        assert edge.mapped

    def test_flatten_makes_flattened_edges(self) -> None:
        from durable.core.edge import flatten

        with Flow("f") as flow:
            nested = Task(name="nested")()
            mapped = add.map(flatten(nested))
        assert flow.edges_to(mapped) == {
            Edge(nested, mapped, key="x", mapped=True, flattened=True)
        }


class TestSetDependencies:
    def test_set_upstream_with_and_without_key(self) -> None:
        flow = Flow("f")
        a, b, c = Task(name="a"), Multiply(), Task(name="c")
        b.set_upstream(a, flow=flow, key="x")
        b.set_upstream(c, flow=flow)
        assert flow.edges_to(b) == {Edge(a, b, key="x"), Edge(c, b)}

    def test_set_downstream_with_key(self) -> None:
        a, b = Task(name="a"), Multiply()
        with Flow("f") as flow:
            a.set_downstream(b, key="y")
        assert flow.edges_from(a) == {Edge(a, b, key="y")}

    def test_set_dependencies_outside_a_flow_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="active Flow"):
            Task().set_upstream(Task())
