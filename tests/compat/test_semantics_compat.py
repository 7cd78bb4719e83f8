"""Prefect 1 docs snippets for mapping, flatten, caching and state handlers, ported by
rewriting their import lines only."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable.states import Cached, Mapped
from tests.compat.porting import port, rows, run_snippet

SIMPLE_MAP = """
from prefect import Flow, task, unmapped


@task
def add_ten(x):
    return x + 10


@task
def add(x, y):
    return x + y


@task
def total(numbers):
    return sum(numbers)


with Flow('simple map') as flow:
    mapped_result = add_ten.map([1, 2, 3])
    with_y = add.map([1, 2, 3], y=unmapped(100))
    reduced = total(mapped_result)

state = flow.run()
"""

FLAT_MAP = """
from prefect import Flow, task, flatten


@task
def A():
    return [1, 2, 3]


@task
def B(x):
    return list(range(x))


@task
def C(y):
    return y + 100


with Flow('flat map') as f:
    a = A() # [1, 2, 3]
    b = B.map(x=a) # [[0], [0, 1], [0, 1, 2]]
    c = C.map(y=flatten(b)) # [100, 100, 101, 100, 101, 102]

state = f.run()
"""

CACHING = """
import datetime
from prefect import task, Flow, Parameter
from prefect.engine.cache_validators import all_inputs

calls = []


@task(cache_for=datetime.timedelta(hours=1), cache_validator=all_inputs)
def return_data(x):
    calls.append(x)
    return x * 2


with Flow("cached-data") as flow:
    x = Parameter("x", default=1)
    data = return_data(x)

first = flow.run()
second = flow.run()
third = flow.run(x=2)
"""

STATE_HANDLER = """
from prefect import Task, Flow


def my_state_handler(obj, old_state, new_state):
    msg = "\\nCalling my custom state handler on {0}:\\n{1} to {2}\\n"
    print(msg.format(obj, old_state, new_state))
    return new_state


my_flow = Flow(name="state-handler-demo",
               tasks=[Task()],
               state_handlers=[my_state_handler])
state = my_flow.run()
"""

ON_FAILURE = """
from prefect import task, Flow

alerts = []


def alert_on_failure(task, state):
    alerts.append(f"{task.name} failed: {state.message}")


@task(on_failure=alert_on_failure)
def fragile():
    raise ValueError("out of coffee")


with Flow("alerting") as flow:
    fragile()

state = flow.run()
"""


def test_map_unmapped_and_reduce_work_as_in_prefect() -> None:
    found = run_snippet(SIMPLE_MAP)
    state = found["state"]
    assert isinstance(state.result[found["mapped_result"]], Mapped)
    assert state.result[found["mapped_result"]].result == [11, 12, 13]
    assert state.result[found["with_y"]].result == [101, 102, 103]
    assert state.result[found["reduced"]].result == 36


def test_flat_map_gives_the_documented_values(db: Path) -> None:
    found = run_snippet(FLAT_MAP)
    assert found["state"].result[found["c"]].result == [100, 100, 101, 100, 101, 102]
    children = rows(db, "SELECT COUNT(*) FROM task_runs WHERE task_slug = 'C-1'"
                    " AND map_index >= 0")  # fmt: skip
    assert children == [(6,)]


def test_a_cached_task_is_not_run_again_while_its_inputs_match() -> None:
    found = run_snippet(CACHING)
    data = found["data"]
    assert found["calls"] == [1, 2]  # the second run reused the first run's value
    assert isinstance(found["second"].result[data], Cached)
    assert found["second"].result[data].result == 2
    assert found["third"].result[data].result == 4


def test_a_flow_state_handler_sees_each_flow_transition(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run_snippet(STATE_HANDLER)
    printed = capsys.readouterr().out
    assert "Calling my custom state handler" in printed
    assert "<Running" in printed
    assert "<Success" in printed


def test_on_failure_is_called_with_the_failed_state() -> None:
    found = run_snippet(ON_FAILURE)
    assert found["alerts"] == [
        "fragile failed: Error during execution of task: ValueError('out of coffee')"
    ]


@pytest.mark.parametrize("snippet", [SIMPLE_MAP, FLAT_MAP, CACHING, STATE_HANDLER])
def test_only_import_lines_change(snippet: str) -> None:
    before, after = snippet.splitlines(), port(snippet).splitlines()
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed
    assert all(a.startswith("from prefect") for a, _ in changed)
