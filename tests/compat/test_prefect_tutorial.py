"""Prefect 1 documentation snippets run on durable with only their import lines changed.

Each snippet is kept as Prefect 1's docs wrote it, `from prefect import ...` and all. The
test ports it with `port()`, which rewrites import lines and nothing else (a test below
checks exactly that), runs it in a fresh namespace on a temporary database, and asserts
on the states and values it left behind.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from durable.states import State
from tests.compat.porting import port, rows, run_snippet

# First steps: a Task subclass, the functional API, state.result[task].result ------------
TASK_CLASS = """
from prefect import Task, Flow


class AddTask(Task):

    def __init__(self, default: int, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.default = default

    def run(self, x: int, y: int=None) -> int:
        if y is None:
            y = self.default
        return x + y


# initialize the task instance
add = AddTask(default=1)

with Flow("My first flow!") as flow:
    first_result = add(1)
    second_result = add(x=first_result, y=100)

state = flow.run()

assert state.is_successful()

first_task_state = state.result[first_result]
assert first_task_state.is_successful()
assert first_task_state.result == 2

second_task_state = state.result[second_result]
assert second_task_state.is_successful()
assert second_task_state.result == 102
"""


def test_a_task_subclass_with_run_and_its_results_work_as_in_prefect(db: Path) -> None:
    ns = run_snippet(TASK_CLASS)

    state: State = ns["state"]
    assert state.result[ns["second_result"]].result == 102
    assert rows(db, "SELECT flow_name, state FROM flow_runs") == [
        ("My first flow!", "Success")
    ]


# The ETL example, with parameters -------------------------------------------------------
ETL = '''
from prefect import task, Flow


@task
def extract():
    """Get a list of data"""
    return [1, 2, 3]


@task
def transform(data):
    """Multiply the input by 10"""
    return [i * 10 for i in data]


@task
def load(data):
    """Print the data to indicate it was received"""
    print("Here's your data: {}".format(data))


with Flow('ETL') as flow:
    e = extract()
    t = transform(e)
    l = load(t)

flow.run() # prints "Here's your data: [10, 20, 30]"
'''


def test_the_etl_example_prints_its_data(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_snippet(ETL)

    assert "Here's your data: [10, 20, 30]" in capsys.readouterr().out
    assert rows(db, "SELECT task_slug, state FROM task_runs ORDER BY rowid") == [
        ("extract-1", "Success"),
        ("transform-1", "Success"),
        ("load-1", "Success"),
    ]


ETL_WITH_PARAMETERS = '''
from prefect import task, Flow, Parameter


@task
def extract(raw):
    """Get a list of data"""
    return [int(x) for x in raw.split(",")]


@task
def transform(data, multiplier):
    """Multiply the input"""
    return [i * multiplier for i in data]


@task(log_stdout=True)
def load(data):
    """Print the data to indicate it was received"""
    print("Here's your data: {}".format(data))
    return data


with Flow("ETL") as flow:
    raw = Parameter("raw", default="1,2,3")
    multiplier = Parameter("multiplier", default=10)
    e = extract(raw)
    t = transform(e, multiplier)
    l = load(t)

state = flow.run()
other_state = flow.run(parameters=dict(raw="4,5", multiplier=2))
'''


def test_the_etl_example_with_parameters_uses_defaults_and_given_values(
    db: Path,
) -> None:
    ns = run_snippet(ETL_WITH_PARAMETERS)

    load = ns["l"]
    assert ns["state"].result[load].result == [10, 20, 30]
    assert ns["other_state"].result[load].result == [8, 10]
    logged = [m for (m,) in rows(db, "SELECT message FROM logs ORDER BY id")]
    assert "Here's your data: [10, 20, 30]" in logged
    assert "Here's your data: [8, 10]" in logged


PARAMETERS = """
from prefect import task, Flow, Parameter

@task
def print_plus_one(x):
    print(x + 1)

with Flow('Parameterized Flow') as flow:
    x = Parameter('x', default = 2)
    print_plus_one(x=x)

flow.run(parameters=dict(x=1)) # prints 2
flow.run(parameters=dict(x=100)) # prints 101
flow.run() #prints 3
"""


def test_parameters_passed_to_run_override_the_default(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_snippet(PARAMETERS)

    assert capsys.readouterr().out.split() == ["2", "101", "3"]
    assert len(rows(db, "SELECT id FROM flow_runs")) == 3


HELLO = """
from prefect import task, Flow, Parameter


@task(log_stdout=True)
def say_hello(name):
    print("Hello, {}!".format(name))


with Flow("My First Flow") as flow:
    name = Parameter('name')
    say_hello(name)


flow.run(name='world') # "Hello, world!"
flow.run(name='Marvin') # "Hello, Marvin!"
"""


def test_a_required_parameter_can_be_given_as_a_keyword_of_run(db: Path) -> None:
    run_snippet(HELLO)

    logged = {m for (m,) in rows(db, "SELECT message FROM logs")}
    assert {"Hello, world!", "Hello, Marvin!"} <= logged
    assert rows(db, "SELECT state FROM flow_runs") == [("Success",), ("Success",)]


# The imperative API --------------------------------------------------------------------
IMPERATIVE = """
from prefect import Task, Flow

class RunMeFirst(Task):
    def run(self):
        print("I'm running first!")

class PlusOneTask(Task):
    def run(self, x):
        return x + 1

flow = Flow('My Imperative Flow')
plus_one = PlusOneTask()
flow.set_dependencies(
    task=plus_one,
    upstream_tasks=[RunMeFirst()],
    keyword_tasks=dict(x=10))

state = flow.run()
"""


def test_set_dependencies_with_upstream_and_keyword_tasks(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ns = run_snippet(IMPERATIVE)

    assert ns["state"].is_successful()
    assert ns["state"].result[ns["plus_one"]].result == 11
    assert "I'm running first!" in capsys.readouterr().out
    assert rows(db, "SELECT task_slug FROM task_runs ORDER BY rowid") == [
        ("RunMeFirst-1",),
        ("PlusOneTask-1",),
    ]


# Retries -------------------------------------------------------------------------------
RETRIES = """
from datetime import timedelta

import prefect
from prefect import task, Flow


@task(max_retries=3, retry_delay=timedelta(seconds=0))
def flaky():
    if prefect.context.get("task_run_count") < 3:
        raise ValueError("Not yet!")
    return "finally"


@task(max_retries=1, retry_delay=timedelta(seconds=0))
def hopeless():
    raise ValueError("Never!")


with Flow("retries") as flow:
    eventually = flaky()
    never = hopeless()

state = flow.run()
"""


def test_retries_rerun_a_failing_task_until_it_succeeds_or_they_run_out(
    db: Path,
) -> None:
    ns = run_snippet(RETRIES)

    state: State = ns["state"]
    assert state.is_failed()
    assert state.result[ns["eventually"]].result == "finally"
    assert state.result[ns["never"]].is_failed()
    assert isinstance(state.result[ns["never"]].result, ValueError)
    assert rows(db, "SELECT task_slug, attempts FROM task_runs ORDER BY rowid") == [
        ("flaky-1", 3),
        ("hopeless-1", 2),
    ]


RETRIES_NEED_A_DELAY = """
from prefect import task

try:
    @task(max_retries=2)
    def no_delay():
        pass
except ValueError as exc:
    error = exc
"""


def test_max_retries_without_retry_delay_is_refused_with_a_value_error(
    db: Path,
) -> None:
    ns = run_snippet(RETRIES_NEED_A_DELAY)

    assert "retry_delay" in str(ns["error"])
    assert "no_delay" not in ns


# Signals -------------------------------------------------------------------------------
SIGNALS = """
from prefect import task, Flow
from prefect.engine import signals

@task
def signal_task(message):
    if message == 'go!':
        raise signals.SUCCESS(message='going!')
    elif message == 'stop!':
        raise signals.FAIL(message='stopping!')
    elif message == 'skip!':
        raise signals.SKIP(message='skipping!')

@task
def stubborn():
    try:
        raise signals.FAIL("failing anyway")
    except Exception:
        return "an except Exception clause does not catch a signal"

with Flow("signals") as flow:
    go = signal_task('go!')
    stop = signal_task('stop!')
    skip = signal_task('skip!')
    anyway = stubborn()

state = flow.run()
"""


def test_signals_set_the_task_state_and_message(db: Path) -> None:
    ns = run_snippet(SIGNALS)

    results = ns["state"].result
    go, stop, skip, anyway = (results[ns[k]] for k in ("go", "stop", "skip", "anyway"))
    assert (go.is_successful(), go.message) == (True, "going!")
    assert (stop.is_failed(), stop.message) == (True, "stopping!")
    assert (skip.is_skipped(), skip.message) == (True, "skipping!")
    assert (anyway.is_failed(), anyway.message) == (True, "failing anyway")
    assert ns["state"].is_failed()


# Triggers ------------------------------------------------------------------------------
TRIGGERS = """
import random

from prefect.triggers import all_successful, all_failed
from prefect import task, Flow


@task(name="Task A")
def task_a():
    if random.random() > 0.5:
        raise ValueError("Non-deterministic error has occured.")

@task(name="Task B", trigger=all_successful)
def task_b():
    # do something interesting
    pass

@task(name="Task C", trigger=all_failed)
def task_c():
    # do something interesting
    pass


with Flow("Trigger example") as flow:
    success = task_b(upstream_tasks=[task_a])
    fail = task_c(upstream_tasks=[task_a])

## note that a flow can have more than one reference task
flow.set_reference_tasks([success])
flow_state = flow.run()
"""


@pytest.mark.parametrize(
    ("draw", "a_failed", "flow_state"),
    [(0.9, True, "Failed"), (0.1, False, "Success")],
    ids=["task-a-fails", "task-a-succeeds"],
)
def test_triggers_run_the_branch_that_matches_and_reference_tasks_decide(
    db: Path,
    monkeypatch: pytest.MonkeyPatch,
    draw: float,
    a_failed: bool,
    flow_state: str,
) -> None:
    monkeypatch.setattr(random, "random", lambda: draw)  # the snippet's coin

    ns = run_snippet(TRIGGERS)

    results = ns["flow_state"].result
    assert results[ns["task_a"]].is_failed() is a_failed
    assert results[ns["success"]].is_successful() is not a_failed
    assert results[ns["fail"]].is_successful() is a_failed
    failed_one = results[ns["success"] if a_failed else ns["fail"]]
    assert type(failed_one).__name__ == "TriggerFailed"
    assert ns["flow_state"].name == flow_state


# The port itself -----------------------------------------------------------------------
SNIPPETS = {
    "task_class": TASK_CLASS,
    "etl": ETL,
    "etl_with_parameters": ETL_WITH_PARAMETERS,
    "parameters": PARAMETERS,
    "hello": HELLO,
    "imperative": IMPERATIVE,
    "retries": RETRIES,
    "retries_need_a_delay": RETRIES_NEED_A_DELAY,
    "signals": SIGNALS,
    "triggers": TRIGGERS,
}


@pytest.mark.parametrize("snippet", SNIPPETS.values(), ids=SNIPPETS.keys())
def test_porting_changes_import_lines_only(snippet: str) -> None:
    before, after = snippet.splitlines(), port(snippet).splitlines()

    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]

    assert changed, "every snippet imports prefect"
    for prefect_line, durable_line in changed:
        assert re.match(r"(from|import) prefect\b", prefect_line)
        assert re.match(r"(from|import) durable\b", durable_line)
