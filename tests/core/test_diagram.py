"""`flow.visualize()`: the DAG as text, one line per task, with states when given."""

from __future__ import annotations

from pathlib import Path

from durable import Flow, Parameter, case, flatten, merge, states, task
from durable.core.task import Task


@task
def extract(n: int) -> list[int]:
    return list(range(n))


@task
def total(xs: list[int]) -> int:
    return sum(xs)


@task
def double(x: int) -> int:
    return 2 * x


@task
def join(left: object, right: object) -> tuple[object, object]:
    return left, right


@task
def is_big(x: int) -> bool:
    return x > 10


def build_numbers() -> tuple[Flow, Task]:
    with Flow("numbers") as flow:
        n = Parameter("n", default=5)
        xs = extract(n)
        result = total(xs, upstream_tasks=[n])
    return flow, result


class TestLayout:
    def test_each_task_is_one_line_in_dependency_order(self) -> None:
        flow, _ = build_numbers()
        assert flow.visualize() == "n\nextract-1  <- n=n\ntotal-1    <- xs=extract-1, n"

    def test_keyed_edges_come_first_sorted_by_key_then_waits(self) -> None:
        with Flow("f") as flow:
            a, b, c = Task(name="a")(), Task(name="b")(), Task(name="c")()
            join(right=b, left=a, upstream_tasks=[c, a])
        assert flow.visualize().splitlines()[-1] == (
            "join-1  <- left=a-1, right=b-1, a-1, c-1"
        )

    def test_mapped_edges_are_marked(self) -> None:
        with Flow("f") as flow:
            xs = extract(3)
            double.map(xs)
        assert flow.visualize().splitlines()[-1] == "double-1   <- x=extract-1 <map>"

    def test_flattened_edges_say_so(self) -> None:
        with Flow("f") as flow:
            xs = extract(3)
            double.map(flatten(xs))
        assert "x=flatten(extract-1) <map>" in flow.visualize()

    def test_an_empty_flow_draws_nothing(self) -> None:
        assert Flow("empty").visualize() == ""


class TestStates:
    def test_a_flow_state_adds_each_tasks_state(self, tmp_path: Path) -> None:
        with Flow("branches") as flow:
            big = is_big(3)
            with case(big, True):
                when_big = double(100)
            with case(big, False):
                when_small = double(1)
            merge(when_big, when_small)
        state = flow.run(db=tmp_path / "x.db")
        assert flow.visualize(state).splitlines() == [
            "is_big-1       Success",
            "case(True)-1   Skipped  <- value=is_big-1",
            "double-1       Skipped  <- case(True)-1",
            "case(False)-1  Success  <- value=is_big-1",
            "double-2       Success  <- case(False)-1",
            "Merge-1        Success  <- task_1=double-1, task_2=double-2",
        ]

    def test_a_task_the_state_does_not_mention_is_pending(self) -> None:
        flow, result = build_numbers()
        state = states.Success(result={result: states.Failed()})
        assert flow.visualize(state).splitlines() == [
            "n          Pending",
            "extract-1  Pending  <- n=n",
            "total-1    Failed   <- xs=extract-1, n",
        ]

    def test_a_mapped_state_counts_its_children_by_state(self) -> None:
        with Flow("f") as flow:
            doubled = double.map(extract(3))
        children: list[states.State] = [
            states.Success(),
            states.Failed(),
            states.Success(),
        ]
        mapped = states.Mapped(map_states=children)
        text = flow.visualize(states.Success(result={doubled: mapped}))
        assert "double-1   Mapped (1 Failed, 2 Success)  <- x=extract-1 <map>" in text


def test_the_text_is_written_to_filename_when_given(tmp_path: Path) -> None:
    flow, _ = build_numbers()
    target = tmp_path / "numbers.txt"
    text = flow.visualize(filename=target)
    assert target.read_text(encoding="utf-8") == text + "\n"
