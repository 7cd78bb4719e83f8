"""`watch_added_tasks`: the hook through which `case` learns the tasks of its block."""

from __future__ import annotations

from durable import Flow, Parameter, task
from durable.core.listeners import watch_added_tasks
from durable.core.task import Task


@task
def inc(x: int) -> int:
    return x + 1


def test_a_listener_hears_each_task_that_joins_a_flow_in_its_block() -> None:
    heard: list[tuple[Flow, Task]] = []
    with Flow("f") as flow:
        first = inc(1)
        with watch_added_tasks(lambda flow, task: heard.append((flow, task))):
            second = inc(first)
            third = inc(second)
        inc(third)
    assert heard == [(flow, second), (flow, third)]


def test_a_task_already_in_the_flow_is_not_heard_again() -> None:
    heard: list[Task] = []
    flow = Flow("f")
    existing = flow.add_task(Task(name="a"))
    with watch_added_tasks(lambda flow, task: heard.append(task)):
        flow.add_task(existing)
    assert heard == []


def test_parameters_and_constants_are_not_heard() -> None:
    heard: list[Task] = []
    with Flow("f"), watch_added_tasks(lambda flow, task: heard.append(task)):
        mapped = inc.map([1, 2, 3])  # the list becomes a Constant task
        inc(Parameter("x"))
    assert [t.name for t in heard] == ["inc", "inc"]
    assert heard[0] is mapped


def test_nested_blocks_call_every_listener_outermost_first() -> None:
    heard: list[str] = []
    with (
        Flow("f"),
        watch_added_tasks(lambda flow, task: heard.append("outer")),
        watch_added_tasks(lambda flow, task: heard.append("inner")),
    ):
        inc(1)
    assert heard == ["outer", "inner"]


def test_tasks_of_a_flow_built_imperatively_are_heard_too() -> None:
    heard: list[Flow] = []
    flow = Flow("f")
    with watch_added_tasks(lambda flow, task: heard.append(flow)):
        inc.copy().bind(1, flow=flow)
    assert heard == [flow]


def test_a_flows_copy_is_not_heard_because_its_tasks_are_not_new() -> None:
    heard: list[Task] = []
    with Flow("f") as flow:
        inc(inc(1))
    with watch_added_tasks(lambda flow, task: heard.append(task)):
        copy = flow.copy()
    assert heard == []
    assert list(copy.tasks) == list(flow.tasks)
