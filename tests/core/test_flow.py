"""Flows: the functional and imperative APIs, slugs, checks, order, fingerprint, run."""

from __future__ import annotations

import time
from typing import Any

import pytest

from durable import states
from durable.core.edge import Edge
from durable.core.flow import Flow, active_flow
from durable.core.parameter import Parameter
from durable.core.task import Task, task
from durable.errors import ConfigurationError, ParameterError
from durable.schedules import CronSchedule


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task
def transform(data: list[int], factor: int = 2) -> list[int]:
    return [x * factor for x in data]


@task
def load(data: list[int]) -> None:
    return None


def build_etl() -> Flow:
    """Build the same flow each call, as loading its file twice would."""
    with Flow("etl") as flow:
        factor = Parameter("factor", default=2)
        data = extract()
        doubled = transform(data, factor)
        tripled = transform(data, 3)
        load(doubled)
        load(tripled)
    return flow


def named(*names: str) -> list[Task]:
    return [Task(name=name) for name in names]


class TestConstruction:
    def test_a_flow_needs_a_name(self) -> None:
        with pytest.raises(ConfigurationError, match="non-empty name"):
            Flow("")

    def test_options_are_stored(self) -> None:
        def handler(flow: Flow, old: states.State, new: states.State) -> None:
            return None

        flow = Flow("f", executor="exec", result="r", state_handlers=[handler])
        assert (flow.name, flow.executor, flow.result) == ("f", "exec", "r")
        assert flow.state_handlers == [handler]
        assert flow.schedule is None
        assert repr(flow) == '<Flow: name="f">'

    def test_on_failure_becomes_a_flow_state_handler(self) -> None:
        failures: list[Flow] = []
        flow = Flow("f", on_failure=lambda flow, state: failures.append(flow))
        (handler,) = flow.state_handlers
        handler(flow, states.Running(), states.Success())
        handler(flow, states.Running(), states.Failed())
        assert failures == [flow]

    def test_tasks_edges_and_reference_tasks_can_be_given(self) -> None:
        a, b, c = named("a", "b", "c")
        flow = Flow("f", tasks=[c], edges=[Edge(a, b)], reference_tasks=[a])
        assert list(flow.tasks) == [c, a, b]
        assert flow.reference_tasks() == {a}

    def test_the_flow_remembers_the_file_that_built_it(self) -> None:
        assert Flow("f").source_path == __file__

    def test_a_subclass_still_records_the_users_file(self) -> None:
        class Mine(Flow):
            def __init__(self) -> None:
                super().__init__("mine")

        assert Mine().source_path == __file__

    def test_a_flow_built_outside_a_file_has_no_source_path(self) -> None:
        def make() -> Flow:
            return Flow("f")

        make.__code__ = make.__code__.replace(co_filename="<stdin>")
        assert make().source_path is None


class TestContext:
    def test_with_makes_the_flow_active(self) -> None:
        assert active_flow() is None
        with Flow("f") as flow:
            assert active_flow() is flow
        assert active_flow() is None

    def test_the_same_flow_can_be_entered_twice(self) -> None:
        flow = Flow("f")
        with flow:
            with flow:
                extract()
            assert active_flow() is flow
            extract()
        assert active_flow() is None
        assert len(flow) == 2

    def test_run_inside_the_with_block_is_refused(self) -> None:
        with Flow("f") as flow, pytest.raises(ConfigurationError, match="inside"):
            flow.run()


class TestSlugs:
    def test_calls_get_numbered_slugs(self) -> None:
        flow = build_etl()
        # A task joins the flow when it is first used, after the task it feeds.
        assert [flow.slugs[t] for t in flow.tasks] == [
            "extract-1",
            "transform-1",
            "factor",
            "transform-2",
            "load-1",
            "load-2",
        ]

    def test_slugs_are_the_same_on_every_build(self) -> None:
        first, second = build_etl(), build_etl()
        assert list(first.slugs.values()) == list(second.slugs.values())

    def test_tags_go_into_the_slug(self) -> None:
        with Flow("f") as flow:
            tagged = extract(task_args={"tags": ["net", "db"]})
        assert flow.slugs[tagged] == "extract-db-net-1"

    def test_an_explicit_slug_is_kept(self) -> None:
        with Flow("f") as flow:
            result = extract(task_args={"slug": "source"})
        assert flow.slugs[result] == "source"
        assert flow.task_by_slug("source") is result
        assert flow.task_by_slug("missing") is None

    def test_duplicate_explicit_slugs_are_refused_naming_both(self) -> None:
        fixed = task(slug="fixed")(extract.fn)
        with Flow("f"):
            fixed()
            with pytest.raises(ConfigurationError, match="both have the slug 'fixed'"):
                fixed()

    def test_an_explicit_slug_colliding_with_a_generated_one_is_refused(self) -> None:
        with Flow("f"):
            extract()
            with pytest.raises(ConfigurationError, match="'extract-1'"):
                Task(slug="extract-1")()

    def test_adding_a_task_twice_keeps_one_slug(self) -> None:
        flow, t = Flow("f"), Task()
        assert flow.add_task(t) is t
        flow.add_task(t)
        assert flow.slugs == {t: "Task-1"}


class TestAddEdge:
    def test_an_edge_adds_both_tasks(self) -> None:
        flow = Flow("f")
        a, b = named("a", "b")
        edge = flow.add_edge(a, b)
        assert edge == Edge(a, b)
        assert list(flow.tasks) == [a, b]
        assert set(flow.edges) == {edge}

    def test_adding_the_same_edge_twice_keeps_one(self) -> None:
        flow = Flow("f")
        a, b = named("a", "b")
        flow.add_edge(a, b)
        flow.add_edge(a, b)
        assert len(flow.edges) == 1

    def test_self_edges_are_refused(self) -> None:
        a = Task(name="a")
        with pytest.raises(ConfigurationError, match="cannot depend on itself"):
            Flow("f").add_edge(a, a)

    def test_cycles_are_refused(self) -> None:
        flow = Flow("f")
        a, b, c = named("a", "b", "c")
        flow.chain(a, b, c)
        with pytest.raises(ConfigurationError, match="would make a cycle") as caught:
            flow.add_edge(c, a)
        assert "<Task: c>" in str(caught.value)
        assert "<Task: a>" in str(caught.value)
        assert len(flow.edges) == 2

    def test_a_key_can_only_be_bound_once(self) -> None:
        flow = Flow("f")
        one, two, target = Task(name="one"), Task(name="two"), transform.copy()
        flow.add_edge(one, target, key="data")
        with pytest.raises(ConfigurationError, match="'data' of <Task: transform>"):
            flow.add_edge(two, target, key="data")

    def test_a_key_already_bound_to_a_constant_is_refused(self) -> None:
        flow = Flow("f")
        target = transform.copy()
        flow.set_dependencies(target, keyword_tasks={"data": [1]})
        with pytest.raises(ConfigurationError, match="already bound"):
            flow.add_edge(Task(), target, key="data")

    def test_a_key_must_be_an_argument_of_run(self) -> None:
        with pytest.raises(ConfigurationError, match="has no argument 'nope'"):
            Flow("f").add_edge(Task(), transform.copy(), key="nope")

    def test_a_key_must_be_an_identifier(self) -> None:
        with pytest.raises(ConfigurationError, match="not a valid Python identifier"):
            Flow("f").add_edge(Task(), transform.copy(), key="not valid")

    def test_edges_into_parameters_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="Parameter 'p' cannot depend"):
            Flow("f").add_edge(Task(), Parameter("p"))

    def test_validate_false_skips_the_cycle_check_and_validate_finds_it(self) -> None:
        flow = Flow("f")
        a, b = named("a", "b")
        flow.add_edge(a, b)
        flow.add_edge(b, a, validate=False)
        with pytest.raises(ConfigurationError, match="has a cycle") as caught:
            flow.validate()
        assert "<Task: a>, <Task: b>" in str(caught.value)
        with pytest.raises(ConfigurationError, match="has a cycle"):
            flow.sorted_tasks()

    def test_validate_true_validates_the_whole_flow(self) -> None:
        flow = Flow("f")
        a, b, c = named("a", "b", "c")
        flow.add_edge(a, b)
        flow.add_edge(b, a, validate=False)
        with pytest.raises(ConfigurationError, match="has a cycle"):
            flow.add_edge(b, c, validate=True)


class TestImperativeApi:
    def test_set_dependencies_makes_edges_and_constants(self) -> None:
        flow = Flow("f")
        a, b, after = named("a", "b", "after")
        target = transform.copy()
        flow.set_dependencies(
            target,
            upstream_tasks=[a],
            downstream_tasks=[after],
            keyword_tasks={"data": b, "factor": 5},
        )
        assert flow.edges_to(target) == {Edge(a, target), Edge(b, target, key="data")}
        assert flow.edges_from(target) == {Edge(target, after)}
        assert flow.constants[target] == {"factor": 5}

    def test_upstream_tasks_must_be_tasks(self) -> None:
        with pytest.raises(ConfigurationError, match="must be tasks, not 3"):
            Flow("f").set_dependencies(Task(), upstream_tasks=[3])

    def test_tasks_inside_a_list_are_refused(self) -> None:
        with Flow("f"):
            data = extract()
            with pytest.raises(ConfigurationError, match="inside a list"):
                transform([data])

    def test_chain_links_each_task_to_the_next(self) -> None:
        flow = Flow("f")
        a, b, c = named("a", "b", "c")
        assert flow.chain(a, b, c) == [Edge(a, b), Edge(b, c)]

    def test_get_tasks_filters_by_every_criterion(self) -> None:
        flow = build_etl()
        assert [t.name for t in flow.get_tasks(name="load")] == ["load", "load"]
        assert [flow.slugs[t] for t in flow.get_tasks(slug="load-2")] == ["load-2"]
        assert flow.get_tasks(task_type=Parameter) == list(flow.parameters())
        tagged = Task(tags=["x", "y"])
        flow.add_task(tagged)
        assert flow.get_tasks(tags=["x"]) == [tagged]


class TestGraph:
    def test_neighbours_roots_and_terminals(self) -> None:
        flow = Flow("f")
        a, b, c, d = named("a", "b", "c", "d")
        flow.add_edge(a, b)
        flow.add_edge(a, c)
        flow.add_edge(b, d)
        flow.add_edge(c, d)
        assert flow.upstream_tasks(d) == {b, c}
        assert flow.downstream_tasks(a) == {b, c}
        assert flow.edges_from(a) == {Edge(a, b), Edge(a, c)}
        assert flow.root_tasks() == {a}
        assert flow.terminal_tasks() == {d}

    def test_asking_about_a_foreign_task_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="not in flow 'f'"):
            Flow("f").edges_to(Task())

    def test_reference_tasks_default_to_terminal_tasks(self) -> None:
        flow = Flow("f")
        a, b = named("a", "b")
        flow.add_edge(a, b)
        assert flow.reference_tasks() == {b}
        flow.set_reference_tasks([a])
        assert flow.reference_tasks() == {a}
        flow.set_reference_tasks([])
        assert flow.reference_tasks() == {b}

    def test_reference_tasks_must_be_in_the_flow(self) -> None:
        with pytest.raises(ConfigurationError, match="not in flow"):
            Flow("f").set_reference_tasks([Task()])

    def test_sorted_tasks_orders_a_diamond(self) -> None:
        flow = Flow("f")
        d, c, b, a = named("d", "c", "b", "a")
        flow.add_task(d)
        flow.add_edge(a, c)
        flow.add_edge(a, b)
        flow.add_edge(b, d)
        flow.add_edge(c, d)
        # Ties go to insertion order: c was added before b.
        assert flow.sorted_tasks() == (a, c, b, d)

    def test_sorted_tasks_is_cached_until_the_flow_changes(self) -> None:
        flow = Flow("f")
        a, b = named("a", "b")
        flow.add_edge(a, b)
        assert flow.sorted_tasks() is flow.sorted_tasks()
        c = Task(name="c")
        flow.add_edge(c, a)
        assert flow.sorted_tasks() == (c, a, b)

    def test_a_ten_thousand_task_chain_builds_and_sorts_quickly(self) -> None:
        started = time.perf_counter()
        flow = Flow("long")
        tasks = [Task(name="step") for _ in range(10_000)]
        flow.chain(*tasks)
        order = flow.sorted_tasks()
        elapsed = time.perf_counter() - started
        assert order == tuple(tasks)
        assert flow.slugs[tasks[-1]] == "step-10000"
        assert elapsed < 1.0

    def test_copy_has_the_same_shape_and_is_independent(self) -> None:
        flow = build_etl()
        copy = flow.copy()
        assert copy.slugs == flow.slugs
        assert copy.fingerprint() == flow.fingerprint()
        copy.add_task(Task())
        assert len(copy) == len(flow) + 1


class TestFingerprint:
    def test_two_builds_have_the_same_fingerprint(self) -> None:
        assert build_etl().fingerprint() == build_etl().fingerprint()

    def test_an_added_edge_changes_it(self) -> None:
        flow = build_etl()
        before = flow.fingerprint()
        first, second = flow.get_tasks(name="load")
        flow.add_edge(first, second)
        assert flow.fingerprint() != before

    def test_an_added_task_changes_it(self) -> None:
        flow = build_etl()
        before = flow.fingerprint()
        flow.add_task(Task())
        assert flow.fingerprint() != before

    def test_constant_names_count_but_not_their_values(self) -> None:
        def build(factor: int, keyword: bool) -> Flow:
            with Flow("f") as flow:
                data = extract()
                if keyword:
                    transform(data, factor=factor)
                else:
                    transform(data)
            return flow

        assert build(2, True).fingerprint() == build(3, True).fingerprint()
        assert build(2, True).fingerprint() != build(2, False).fingerprint()


class TestRun:
    @pytest.fixture
    def engine_calls(self, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
        """Stand in for the engine: record what flow.run hands it."""
        calls: list[dict[str, Any]] = []

        def run_flow(flow: Flow, **options: Any) -> states.State:
            calls.append({"flow": flow, **options})
            return states.Success()

        monkeypatch.setattr("durable.engine.flow_runner.run_flow", run_flow)
        return calls

    def test_run_hands_only_the_parameters_given_to_the_engine(
        self, engine_calls: list[dict[str, Any]]
    ) -> None:
        # Defaults are filled by the engine for a new run; a resumed run keeps its own.
        flow = build_etl()
        assert flow.run(run_id="r1", db="x.db").is_successful()
        (call,) = engine_calls
        assert call == {
            "flow": flow,
            "parameters": None,
            "run_id": "r1",
            "executor": None,
            "db": "x.db",
            "allow_flow_changes": False,
            "durability": "full",
            "restart": False,
        }

    def test_keyword_arguments_named_like_parameters_are_parameters(
        self, engine_calls: list[dict[str, Any]]
    ) -> None:
        build_etl().run(factor=5)
        assert engine_calls[0]["parameters"] == {"factor": 5}

    def test_other_keyword_arguments_are_refused(
        self, engine_calls: list[dict[str, Any]]
    ) -> None:
        with pytest.raises(ConfigurationError, match="task_states, zzz"):
            build_etl().run(zzz=1, task_states={})
        assert engine_calls == []

    def test_unknown_parameters_are_refused_before_running(
        self, engine_calls: list[dict[str, Any]]
    ) -> None:
        with pytest.raises(ParameterError, match="no parameter"):
            build_etl().run(parameters={"nope": 1})
        assert engine_calls == []

    def test_a_schedule_must_be_a_schedule(self) -> None:
        with pytest.raises(ConfigurationError, match=r"durable\.schedules"):
            Flow("f", schedule=object())

    def test_run_on_schedule_false_runs_a_scheduled_flow_once(
        self, engine_calls: list[dict[str, Any]]
    ) -> None:
        flow = Flow("f", schedule=CronSchedule("0 6 * * *"))
        flow.run(run_on_schedule=False)
        assert len(engine_calls) == 1


class TestValidateParameters:
    @pytest.fixture
    def flow(self) -> Flow:
        flow = Flow("params")
        flow.add_task(Parameter("a"))
        flow.add_task(Parameter("b", default=3))
        return flow

    def test_unknown_names_are_refused_listing_the_parameters(self, flow: Flow) -> None:
        with pytest.raises(ParameterError) as caught:
            flow.validate_parameters({"a": 1, "foo": 2})
        assert str(caught.value) == (
            "Flow 'params' has no parameter(s) 'foo'; its parameters are: a, b"
        )

    def test_missing_required_parameters_are_refused(self, flow: Flow) -> None:
        with pytest.raises(
            ParameterError, match=r"missing required parameter\(s\) 'a'"
        ):
            flow.validate_parameters({"b": 1})

    def test_defaults_are_filled_in(self, flow: Flow) -> None:
        assert flow.validate_parameters({"a": 1}) == {"a": 1, "b": 3}
        assert flow.validate_parameters({"a": 1, "b": None}) == {"a": 1, "b": None}
