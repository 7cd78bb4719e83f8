"""Conditionals: case, merge, switch, ifelse and FilterTask, built and run for real."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from durable import Flow, Parameter, signals, states, task, triggers
from durable.core.task import Task
from durable.errors import ConfigurationError
from durable.tasks.control_flow import (
    CompareValue,
    FilterTask,
    Merge,
    case,
    ifelse,
    merge,
    switch,
)


class Recorder:
    """Builds tasks that note each call, so a test can count what ran."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def returning(self, name: str, value: Any = None) -> Task:
        """A task without arguments that returns `value` (default: its name)."""

        def body() -> Any:
            self.calls.append(name)
            return name if value is None else value

        return task(name=name)(body)

    def passing(self, name: str, **options: Any) -> Task:
        """A task that returns its argument `x` unchanged."""

        def body(x: Any) -> Any:
            self.calls.append(name)
            return x

        return task(name=name, **options)(body)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def run(flow: Flow, tmp_path: Path, **options: Any) -> states.State:
    """Run `flow` through the engine on a database of the test's own."""
    return flow.run(db=tmp_path / "runs.db", **options)


def constant(name: str, value: object) -> Task:
    """A task that returns `value`: a condition fixed by the test."""
    return task(name=name)(lambda: value)


def compare_values(flow: Flow) -> list[CompareValue]:
    return [t for t in flow.tasks if isinstance(t, CompareValue)]


def upstream_compare_values(flow: Flow, task_: Task) -> list[CompareValue]:
    return [t for t in flow.upstream_tasks(task_) if isinstance(t, CompareValue)]


class TestCaseBuildsTheGraph:
    def test_a_task_created_in_a_block_waits_for_a_compare_value(
        self, recorder: Recorder
    ) -> None:
        with Flow("f") as flow:
            cond = recorder.returning("cond")()
            with case(cond, "a"):
                branch = recorder.returning("branch")()
        (compare,) = upstream_compare_values(flow, branch)
        assert compare.value == "a"
        assert flow.slugs[compare] == "case(a)-1"
        assert {(e.upstream, e.key) for e in flow.edges_to(branch)} == {(compare, None)}
        assert {(e.upstream, e.key) for e in flow.edges_to(compare)} == {
            (cond, "value")
        }

    def test_only_tasks_without_upstream_in_the_block_get_the_condition(
        self, recorder: Recorder
    ) -> None:
        with Flow("f") as flow:
            cond, before = recorder.returning("cond")(), recorder.returning("b")()
            with case(cond, 1):
                first = recorder.passing("first")(before)
                second = recorder.passing("second")(first)
        assert len(upstream_compare_values(flow, first)) == 1
        assert flow.upstream_tasks(second) == {first}
        assert flow.upstream_tasks(before) == set()

    def test_parameters_first_used_in_a_block_stay_root_tasks(
        self, recorder: Recorder
    ) -> None:
        x = Parameter("x", default=1)
        with Flow("f") as flow:
            cond = recorder.returning("cond")()
            with case(cond, True):
                recorder.passing("use")(x)
        assert flow.upstream_tasks(x) == set()

    def test_an_empty_block_adds_no_task(self, recorder: Recorder) -> None:
        with Flow("f") as flow:
            cond = recorder.returning("cond")()
            with case(cond, True):
                pass
        assert list(flow.tasks) == [cond]

    def test_nested_blocks_chain_their_conditions(self, recorder: Recorder) -> None:
        with Flow("f") as flow:
            outer_cond = recorder.returning("outer")()
            inner_cond = recorder.returning("inner")()
            with case(outer_cond, 1):
                outer_task = recorder.returning("outer_task")()
                with case(inner_cond, 2):
                    inner_task = recorder.returning("inner_task")()
        (outer,) = upstream_compare_values(flow, outer_task)
        (inner,) = upstream_compare_values(flow, inner_task)
        assert (outer.value, inner.value) == (1, 2)
        assert flow.upstream_tasks(inner) == {inner_cond, outer}

    def test_a_block_works_on_a_flow_built_imperatively(
        self, recorder: Recorder
    ) -> None:
        flow = Flow("f")
        cond = recorder.returning("cond")
        branch = recorder.returning("branch")
        flow.add_task(cond)
        with case(cond, True):
            flow.add_task(branch)
        assert len(upstream_compare_values(flow, branch)) == 1

    def test_the_same_definition_builds_the_same_slugs_and_fingerprint(
        self, recorder: Recorder
    ) -> None:
        def build() -> Flow:
            with Flow("f") as flow:
                cond = recorder.returning("cond")()
                with case(cond, "x"):
                    recorder.returning("branch")()
            return flow

        first, second = build(), build()
        assert list(first.slugs.values()) == list(second.slugs.values())
        assert first.fingerprint() == second.fingerprint()

    def test_the_value_cannot_be_a_task(self, recorder: Recorder) -> None:
        with pytest.raises(TypeError, match="plain value"):
            case(recorder.returning("a"), recorder.returning("b"))

    def test_a_block_gives_each_flow_it_builds_its_own_condition(
        self, recorder: Recorder
    ) -> None:
        one, two = Flow("one"), Flow("two")
        cond = recorder.returning("cond")
        a, b = recorder.returning("a"), recorder.returning("b")
        with case(cond, 1):
            one.add_task(a)
            two.add_task(b)
        (in_one,), (in_two,) = compare_values(one), compare_values(two)
        assert one.upstream_tasks(a) == {in_one}
        assert two.upstream_tasks(b) == {in_two}
        assert one.upstream_tasks(in_one) == two.upstream_tasks(in_two) == {cond}

    def test_a_block_left_by_an_exception_adds_no_condition(
        self, recorder: Recorder
    ) -> None:
        flow = Flow("f")

        def build() -> None:
            with flow:
                cond = recorder.returning("cond")()
                with case(cond, 1):
                    recorder.returning("a")()
                    raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            build()
        assert not compare_values(flow)


def build_coin_flow(recorder: Recorder, seed: int) -> tuple[Flow, Task, Task, Task]:
    """Flip a seeded coin; heads and tails each have a branch; merge them."""

    @task
    def flip() -> str:
        return random.Random(seed).choice(["heads", "tails"])

    with Flow("coin") as flow:
        coin = flip()
        with case(coin, "heads"):
            heads = recorder.returning("heads", "H")()
        with case(coin, "tails"):
            tails = recorder.returning("tails", "T")()
        merged = merge(heads, tails)
    return flow, heads, tails, merged


class TestCaseRuns:
    @pytest.mark.parametrize("seed", range(6))
    def test_exactly_one_branch_runs_and_the_merge_sees_its_result(
        self, recorder: Recorder, tmp_path: Path, seed: int
    ) -> None:
        side = random.Random(seed).choice(["heads", "tails"])
        flow, heads, tails, merged = build_coin_flow(recorder, seed)
        state = run(flow, tmp_path)
        assert state.is_successful()
        assert recorder.calls == [side]
        ran, skipped = (heads, tails) if side == "heads" else (tails, heads)
        assert state.result[ran].is_successful()
        assert state.result[skipped].is_skipped()
        assert state.result[merged].result == {"heads": "H", "tails": "T"}[side]

    @pytest.mark.parametrize(
        ("outer", "inner", "expected"),
        [(1, 2, ["outer", "inner"]), (1, 0, ["outer"]), (0, 2, []), (0, 0, [])],
    )
    def test_a_nested_block_runs_only_when_both_conditions_match(
        self,
        recorder: Recorder,
        tmp_path: Path,
        outer: int,
        inner: int,
        expected: list[str],
    ) -> None:
        with Flow("nested") as flow:
            outer_cond = constant("outer_cond", outer)()
            with case(outer_cond, 1):
                recorder.returning("outer")()
                inner_cond = constant("inner_cond", inner)()
                with case(inner_cond, 2):
                    recorder.returning("inner")()
        assert run(flow, tmp_path).is_successful()
        assert recorder.calls == expected

    def test_skips_propagate_beyond_the_block(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        with Flow("f") as flow:
            cond = recorder.returning("cond", False)()
            with case(cond, True):
                branch = recorder.returning("branch")()
            after = recorder.passing("after")(branch)
            further = recorder.passing("further")(after)
        state = run(flow, tmp_path)
        assert recorder.calls == ["cond"]
        assert state.result[further].is_skipped()
        assert state.is_successful()  # skips count as success, as in Prefect 1

    def test_a_task_that_opts_out_runs_after_a_skipped_branch_with_none(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        with Flow("f") as flow:
            cond = recorder.returning("cond", False)()
            with case(cond, True):
                branch = recorder.returning("branch")()
            anyway = recorder.passing("anyway", skip_on_upstream_skip=False)(branch)
        state = run(flow, tmp_path)
        assert recorder.calls == ["cond", "anyway"]
        assert state.result[anyway].is_successful()
        assert state.result[anyway].result is None


class TestMerge:
    def test_merge_passes_each_branch_as_task_n(self, recorder: Recorder) -> None:
        with Flow("f") as flow:
            a, b = recorder.returning("a")(), recorder.returning("b")()
            merged = merge(a, b)
        assert isinstance(merged, Merge)
        assert {(e.upstream, e.key) for e in flow.edges_to(merged)} == {
            (a, "task_1"),
            (b, "task_2"),
        }

    def test_the_first_result_that_is_not_none_wins_in_branch_order(self) -> None:
        results: dict[str, str | None] = {f"task_{n}": None for n in range(1, 12)}
        results.update(task_10="ten", task_2="two", task_11="eleven")
        assert Merge().run(**results) == "two"
        assert Merge().run(task_1=None, task_2=None) is None

    def test_merge_has_prefects_trigger_and_skip_options(self) -> None:
        merged = Merge()
        assert merged.trigger is triggers.not_all_skipped
        assert merged.skip_on_upstream_skip is False
        with pytest.raises(ConfigurationError, match="skip_on_upstream_skip=False"):
            Merge(skip_on_upstream_skip=True)

    def test_merge_is_skipped_when_every_branch_was_skipped(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        with Flow("f") as flow:
            cond = recorder.returning("cond", "neither")()
            with case(cond, "a"):
                a = recorder.returning("a")()
            with case(cond, "b"):
                b = recorder.returning("b")()
            merged = merge(a, b)
        state = run(flow, tmp_path)
        assert state.result[merged].is_skipped()
        assert recorder.calls == ["cond"]

    def test_merge_fails_its_trigger_when_a_branch_failed(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        @task
        def broken() -> None:
            raise signals.FAIL("broken branch")

        with Flow("f") as flow:
            cond = recorder.returning("cond", "a")()
            with case(cond, "a"):
                a = broken()
            with case(cond, "b"):
                b = recorder.returning("b")()
            merged = merge(a, b)
        state = run(flow, tmp_path)
        assert isinstance(state.result[merged], states.TriggerFailed)
        assert state.is_failed()


def build_switch_flow(
    recorder: Recorder, value: str
) -> tuple[Flow, dict[str, Task], Task]:
    branches = {name: recorder.returning(name, name.upper()) for name in "abc"}
    with Flow("switch") as flow:
        cond = constant("condition", value)()
        switch(cond, branches)
        merged = merge(*branches.values())
    return flow, branches, merged


class TestSwitch:
    @pytest.mark.parametrize("value", ["a", "b", "c"])
    def test_only_the_matching_branch_of_three_runs(
        self, recorder: Recorder, tmp_path: Path, value: str
    ) -> None:
        flow, branches, merged = build_switch_flow(recorder, value)
        state = run(flow, tmp_path)
        assert recorder.calls == [value]
        assert state.result[merged].result == value.upper()
        for name, branch in branches.items():
            assert state.result[branch].is_skipped() is (name != value)

    def test_a_value_matching_no_case_skips_every_branch(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        flow, branches, merged = build_switch_flow(recorder, "z")
        state = run(flow, tmp_path)
        assert recorder.calls == []
        assert all(state.result[b].is_skipped() for b in branches.values())
        assert state.result[merged].is_skipped()

    def test_compare_values_are_tagged_switch(self, recorder: Recorder) -> None:
        flow, _, _ = build_switch_flow(recorder, "a")
        compares = compare_values(flow)
        assert [c.value for c in compares] == ["a", "b", "c"]
        assert all(c.tags == {"switch"} for c in compares)
        assert flow.slugs[compares[0]] == 'CompareValue: "a"-switch-1'

    def test_a_case_that_is_not_a_task_is_refused(self, recorder: Recorder) -> None:
        with Flow("f"), pytest.raises(TypeError, match="pass a task"):
            switch(recorder.returning("cond")(), {"a": "not a task"})  # type: ignore[dict-item]


class TestIfelse:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [(True, "yes"), (False, "no"), (1, "yes"), (0, "no"), ([], "no"), ("x", "yes")],
    )
    def test_the_truthiness_of_the_condition_picks_the_branch(
        self, recorder: Recorder, tmp_path: Path, value: object, expected: str
    ) -> None:
        yes, no = recorder.returning("yes"), recorder.returning("no")
        with Flow("f") as flow:
            ifelse(constant("condition", value)(), yes, no)
            merged = merge(yes, no)
        state = run(flow, tmp_path)
        assert recorder.calls == [expected]
        assert state.result[merged].result == expected

    def test_a_missing_branch_is_left_out(self, recorder: Recorder) -> None:
        yes = recorder.returning("yes")
        with Flow("f") as flow:
            ifelse(recorder.returning("cond")(), yes, None)
        assert [c.value for c in compare_values(flow)] == [True]

    def test_no_branch_at_all_adds_nothing(self, recorder: Recorder) -> None:
        with Flow("f") as flow:
            cond = recorder.returning("cond")()
            ifelse(cond, None, None)
        assert list(flow.tasks) == [cond]


class TestFilterTask:
    def test_by_default_none_and_exceptions_are_dropped(self) -> None:
        failure = signals.FAIL("child failed")
        results = [1, None, ValueError("boom"), 2, failure, states.NoResult, 0]
        assert FilterTask().run(results) == [1, 2, 0]

    def test_a_filter_func_chooses_what_to_keep(self) -> None:
        even = FilterTask(filter_func=lambda x: x % 2 == 0)
        assert even.run([1, 2, 3, 4]) == [2, 4]

    def test_it_runs_whatever_its_upstream_tasks_did(self) -> None:
        default = FilterTask()
        assert default.trigger is triggers.all_finished
        assert default.skip_on_upstream_skip is False
        assert FilterTask(trigger=triggers.all_successful).trigger is (
            triggers.all_successful
        )

    def test_a_log_func_logs_the_filtered_list(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        logged = FilterTask(log_func=lambda kept: f"kept {len(kept)}")
        with caplog.at_level(logging.INFO):
            logged.run([1, None])
        assert "kept 1" in caplog.messages

    def test_it_filters_an_upstream_result_in_a_flow(self, tmp_path: Path) -> None:
        @task
        def results() -> list[object]:
            return [1, None, ValueError("boom"), 2]

        keep = FilterTask()
        with Flow("f") as flow:
            kept = keep(results())
        assert run(flow, tmp_path).result[kept].result == [1, 2]


class TestDurability:
    def test_resuming_a_finished_run_reruns_nothing_and_reads_the_merge_back(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        flow, _, _, merged = build_coin_flow(recorder, seed=3)
        first = run(flow, tmp_path, run_id="coin-run")
        calls = list(recorder.calls)
        again, _, _, merged_again = build_coin_flow(recorder, seed=3)
        resumed = run(again, tmp_path, run_id="coin-run")
        assert recorder.calls == calls
        assert resumed.result[merged_again].result == first.result[merged].result

    def test_a_run_cut_short_after_the_merge_resumes_without_rerunning_branches(
        self, recorder: Recorder, tmp_path: Path
    ) -> None:
        received: list[object] = []
        interrupt = [True]

        @task
        def report(value: object) -> None:
            received.append(value)
            if interrupt.pop() if interrupt else False:
                raise KeyboardInterrupt  # stops the run; it stays resumable

        def build() -> Flow:
            flow, _, _, merged = build_coin_flow(recorder, seed=1)
            with flow:
                report(merged)
            return flow

        side = random.Random(1).choice(["heads", "tails"])
        with pytest.raises(KeyboardInterrupt):
            run(build(), tmp_path, run_id="cut")
        assert recorder.calls == [side]
        state = run(build(), tmp_path, run_id="cut")
        assert state.is_successful()
        assert recorder.calls == [side]  # neither branch ran again
        expected = {"heads": "H", "tails": "T"}[side]
        assert received == [expected, expected]  # the merge's result, from the store


def test_control_flow_is_importable_from_durable_and_its_prefect_home() -> None:
    import durable
    import durable.tasks.control_flow as home

    names: list[Callable[..., Any] | type] = [case, merge, switch, ifelse]
    assert [getattr(durable, n.__name__) for n in names] == names
    assert [getattr(home, n.__name__) for n in names] == names


DOCS = Path(__file__).resolve().parents[2] / "docs" / "control-flow.md"
SNIPPET = re.compile(r"```python\n(.*?)```(?:\n\nprints\n\n```\n(.*?)```)?", re.DOTALL)
"""A python block of the docs, with the output the docs show after it, if any."""


def docs_snippets() -> list[tuple[str, str | None]]:
    found = SNIPPET.findall(DOCS.read_text(encoding="utf-8"))
    return [(code, printed or None) for code, printed in found]


DOCS_SNIPPETS = docs_snippets()


@pytest.mark.parametrize(
    ("snippet", "printed"),
    DOCS_SNIPPETS,
    ids=[f"snippet-{n}" for n in range(1, len(DOCS_SNIPPETS) + 1)],
)
def test_each_snippet_of_the_docs_runs_and_prints_what_the_docs_show(
    snippet: str,
    printed: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # the snippets' databases land here
    namespace: dict[str, Any] = {"__name__": "docs_snippet"}
    exec(compile(snippet, str(DOCS), "exec"), namespace)  # noqa: S102 (our own docs)
    if printed is not None:
        assert capsys.readouterr().out == printed
