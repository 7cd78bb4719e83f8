"""`plan_restart`: which task runs a restart runs again and which it reuses; the one plan
the engine's restart and the terminal UI's preview share."""

from __future__ import annotations

from typing import NamedTuple

import pytest

from durable.restarts import plan_restart


class Run(NamedTuple):
    slug: str
    name: str
    map_index: int
    state: str


def runs(*spec: tuple[str, str] | tuple[str, str, int]) -> list[Run]:
    out = []
    for item in spec:
        slug, state, *index = item
        out.append(Run(slug, slug.upper(), index[0] if index else -1, state))
    return out


#           ┌─ a_fail ─ a_down
# extract ──┼─ b_fail ─ b_down ─┐
#           └─ ok ──────────────┴─ report
EDGES = [
    ("extract", "a_fail"), ("a_fail", "a_down"), ("extract", "b_fail"),
    ("b_fail", "b_down"), ("extract", "ok"), ("b_down", "report"), ("ok", "report"),
]  # fmt: skip
TWO_BRANCHES = runs(
    ("extract", "Success"), ("a_fail", "Failed"), ("b_fail", "TimedOut"),
    ("ok", "Success"), ("a_down", "TriggerFailed"), ("b_down", "TriggerFailed"),
    ("report", "TriggerFailed"),
)  # fmt: skip


def keys(items: tuple[object, ...]) -> list[str]:
    return [item.slug for item in items]  # type: ignore[attr-defined]


def test_every_failed_branch_is_a_root_and_successes_are_reused() -> None:
    plan = plan_restart(TWO_BRANCHES, EDGES)

    assert plan.roots == ("a_fail", "b_fail")
    assert keys(plan.reset) == ["a_fail", "b_fail", "a_down", "b_down", "report"]
    assert keys(plan.reused) == ["extract", "ok"]
    reasons = {item.slug: item.reason for item in plan.reset}
    assert reasons == {
        "a_fail": "Failed", "b_fail": "TimedOut", "a_down": "downstream of a_fail",
        "b_down": "downstream of b_fail", "report": "downstream of b_fail",
    }  # fmt: skip
    assert [item.reason for item in plan.reused] == ["reused (Success)"] * 2


def test_a_success_downstream_of_a_failure_runs_again() -> None:
    # Cancelled mid-run: `report` had somehow succeeded from a stale input (a resumed
    # run with allow_flow_changes): below a root, it runs again all the same.
    states = runs(
        ("extract", "Success"), ("a_fail", "Cancelled"), ("a_down", "Success")
    )
    plan = plan_restart(states, [("extract", "a_fail"), ("a_fail", "a_down")])
    assert keys(plan.reset) == ["a_fail", "a_down"]
    assert plan.downstream == ("a_down",)


def test_only_the_failed_children_of_a_mapped_task_run_again_but_all_below() -> None:
    states = runs(
        ("items", "Success"), ("fetch", "Failed"), ("fetch", "Success", 0),
        ("fetch", "Failed", 1), ("fetch", "Success", 2), ("store", "TriggerFailed"),
        ("store", "TriggerFailed", 0), ("store", "Success", 1),
    )  # fmt: skip
    plan = plan_restart(states, [("items", "fetch"), ("fetch", "store")])

    assert plan.roots == ("fetch",)
    assert [(i.slug, i.map_index) for i in plan.reset] == [
        ("fetch", -1), ("fetch", 1), ("store", -1), ("store", 0), ("store", 1),
    ]  # fmt: skip
    assert [(i.slug, i.map_index) for i in plan.reused] == [
        ("items", -1), ("fetch", 0), ("fetch", 2),
    ]  # fmt: skip


def test_from_a_task_resets_it_and_everything_below_even_successes() -> None:
    states = runs(("extract", "Success"), ("a_fail", "Success"), ("a_down", "Success"),
                  ("b_fail", "Success"))  # fmt: skip
    plan = plan_restart(states, EDGES, from_tasks={"a_fail"})

    assert plan.roots == ("a_fail",)
    assert [(i.slug, i.reason) for i in plan.reset] == [
        ("a_fail", "from here"),
        ("a_down", "downstream of a_fail"),
    ]
    assert keys(plan.reused) == ["extract", "b_fail"]


def test_a_run_without_failures_plans_nothing() -> None:
    plan = plan_restart(runs(("extract", "Success")), [])
    assert plan.empty
    assert plan.roots == ()
    assert keys(plan.reused) == ["extract"]


def test_an_unknown_task_is_refused_with_the_run_s_tasks() -> None:
    with pytest.raises(ValueError, match=r"No task 'nope' in this run; its tasks are: "
                       r"extract, a_fail"):  # fmt: skip
        plan_restart(runs(("extract", "Success"), ("a_fail", "Failed")), EDGES,
                     from_tasks=["nope"])  # fmt: skip
