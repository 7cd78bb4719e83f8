"""Prefect 1 conditionals, written as its docs write them, run with only imports changed.

Each snippet imports from `prefect` and `prefect.tasks.control_flow`; `port()` rewrites
those import lines and nothing else, the snippet runs in a fresh namespace on a temporary
database, and the test asserts the outcome Prefect 1's docs describe.
"""

from __future__ import annotations

import random

import pytest

from tests.compat.porting import port, run_snippet

# The conditional-branches idiom: case blocks on a random condition, merged ------------
CASE_AND_MERGE = """
from random import random

from prefect import task, Flow, case
from prefect.tasks.control_flow import merge


@task
def check_condition():
    return random() < .5


@task
def action_if_true():
    return "I am true!"


@task
def action_if_false():
    return "I am false!"


@task
def another_action(val):
    print(val)


with Flow("conditional-branches") as flow:
    cond = check_condition()

    with case(cond, True):
        val1 = action_if_true()

    with case(cond, False):
        val2 = action_if_false()

    val = merge(val1, val2)

    another_action(val)

state = flow.run()
"""


def test_port_changes_the_import_lines_and_nothing_else() -> None:
    before, after = CASE_AND_MERGE.splitlines(), port(CASE_AND_MERGE).splitlines()
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert changed == [
        (
            "from prefect import task, Flow, case",
            "from durable import task, Flow, case",
        ),
        (
            "from prefect.tasks.control_flow import merge",
            "from durable.tasks.control_flow import merge",
        ),
    ]


@pytest.mark.parametrize("seed", range(4))
def test_exactly_one_branch_runs_and_the_merge_passes_its_value_on(
    seed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = "I am true!" if random.Random(seed).random() < 0.5 else "I am false!"
    random.seed(seed)  # the snippet calls the module's random()
    ns = run_snippet(CASE_AND_MERGE)
    state = ns["state"]
    assert state.is_successful()
    ran, skipped = ("val1", "val2") if expected == "I am true!" else ("val2", "val1")
    assert state.result[ns[ran]].result == expected
    assert state.result[ns[skipped]].is_skipped()
    assert state.result[ns["val"]].result == expected
    assert capsys.readouterr().out == f"{expected}\n"


# switch(), from its docstring: returning "b" takes the b branch ---------------------------
SWITCH = """
from prefect import task, Flow
from prefect.tasks.control_flow import switch


@task
def condition():
    return "b"    # returning 'b' will take the b_branch


@task
def a_branch():
    return "A Branch"


@task
def b_branch():
    return "B Branch"


with Flow("switch-flow") as flow:
    switch(condition, dict(a=a_branch, b=b_branch))

state = flow.run()
"""


def test_switch_takes_the_branch_named_by_the_condition() -> None:
    ns = run_snippet(SWITCH)
    state = ns["state"]
    assert state.is_successful()
    assert state.result[ns["a_branch"]].is_skipped()
    assert state.result[ns["b_branch"]].result == "B Branch"


# ifelse() and merge(), from merge's docstring, with Task subclasses ---------------------
IFELSE = """
from prefect import Task, Flow
from prefect.tasks.control_flow import ifelse, merge


class CheckCondition(Task):
    def run(self):
        return []  # falsy


class ActionIfTrue(Task):
    def run(self):
        return "true branch"


class ActionIfFalse(Task):
    def run(self):
        return "false branch"


with Flow("My Flow") as flow:
    true_branch = ActionIfTrue()
    false_branch = ActionIfFalse()
    ifelse(CheckCondition(), true_branch, false_branch)

    merged_result = merge(true_branch, false_branch)

state = flow.run()
"""


def test_ifelse_runs_the_false_branch_for_a_falsy_condition() -> None:
    ns = run_snippet(IFELSE)
    state = ns["state"]
    assert state.result[ns["true_branch"]].is_skipped()
    assert state.result[ns["merged_result"]].result == "false branch"


# Nested case blocks, a task that opts out of skipping, and a Parameter ------------------
NESTED = """
from prefect import task, Flow, Parameter, case


@task
def is_weekend(day):
    return day in ("sat", "sun")


@task
def is_sunny(day):
    return day != "sun"


@task
def go_outside():
    return "hiking"


@task(skip_on_upstream_skip=False)
def write_diary(plan):
    return plan or "stayed home"


with Flow("weekend") as flow:
    day = Parameter("day")
    with case(is_weekend(day), True):
        with case(is_sunny(day), True):
            plan = go_outside()
    diary = write_diary(plan)
"""


@pytest.mark.parametrize(
    ("day", "plan_state", "diary"),
    [("sat", "Success", "hiking"), ("sun", "Skipped", "stayed home"),
     ("mon", "Skipped", "stayed home")],
)  # fmt: skip
def test_nested_cases_run_the_inner_task_only_when_both_match(
    day: str, plan_state: str, diary: str
) -> None:
    ns = run_snippet(NESTED)
    state = ns["flow"].run(day=day)
    assert state.result[ns["plan"]].name == plan_state
    assert state.result[ns["diary"]].result == diary


# FilterTask drops None and exceptions ----------------------------------------------------
FILTER = """
from prefect import task, Flow
from prefect.tasks.control_flow import FilterTask

default_filter = FilterTask()
even_filter = FilterTask(filter_func=lambda x: x % 2 == 0)


@task
def results():
    return [1, None, ValueError("boom"), 2, 4]


with Flow("filter-numbers") as flow:
    kept = default_filter(results())
    even = even_filter(kept)

flow_state = flow.run()
"""


def test_filter_task_keeps_the_real_results() -> None:
    ns = run_snippet(FILTER)
    state = ns["flow_state"]
    assert state.result[ns["kept"]].result == [1, 2, 4]
    assert state.result[ns["even"]].result == [2, 4]
