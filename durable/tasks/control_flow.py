"""Conditional branches, as Prefect 1's `prefect.tasks.control_flow`.

`case`, `switch` and `ifelse` put a `CompareValue` task in front of each branch: it raises
SKIP when the condition's result does not match, and the engine then skips every task
downstream that does not opt out with `skip_on_upstream_skip=False`. `merge` joins the
branches again (a `Merge` opts out, and returns the result of the branch that ran).
`FilterTask` cleans a list of results, such as a mapped task's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Self, Unpack

from durable import context, signals, triggers
from durable.core.flow import Flow
from durable.core.listeners import watch_added_tasks
from durable.core.task import Task, TaskOptions, task
from durable.errors import ConfigurationError
from durable.states import NoResult

__all__ = [
    "CompareValue",
    "FilterTask",
    "Merge",
    "case",
    "ifelse",
    "merge",
    "switch",
]

logger = logging.getLogger(__name__)

_active_case: ContextVar[case | None] = ContextVar("durable_active_case", default=None)


class CompareValue(Task):
    """Skip unless the value received at run time equals the value given here.

    It returns None when the values match: branches wait for its state, not its
    result, so they run or skip with it.
    """

    def __init__(self, value: Any, **options: Unpack[TaskOptions]) -> None:
        self.value = value
        """The value the condition's result must equal for the branch to run."""
        options.setdefault("name", f'CompareValue: "{value}"')
        super().__init__(**options)

    def run(self, value: Any) -> None:
        """Return when `value` matches, else raise SKIP."""
        if value != self.value:
            raise signals.SKIP(f'Provided value "{value}" did not match "{self.value}"')


class case:  # noqa: N801 (Prefect's name)
    """A conditional block: its tasks run only if `task`'s result equals `value`.

    Like an `if` in a flow definition. On leaving the block, a `CompareValue` task
    (named `case(value)`) is set upstream of every task created in the block whose
    upstream tasks were not also created in it; the others follow through their
    upstream tasks. When the result does not match, the block's tasks are Skipped, as
    is everything downstream of them that keeps `skip_on_upstream_skip=True`.

    ```python
    with Flow("example") as flow:
        cond = condition()
        with case(cond, "a"):
            run_if_cond_is_a()
        with case(cond, "b"):
            run_if_cond_is_b()
    ```

    Blocks nest: an inner block's tasks also wait for the outer block's condition.
    Parameters first used inside a block are not made conditional, because parameters
    are always root tasks. A block that adds tasks to several flows (`apply_map` builds
    a flow of its own) gives each flow its own `CompareValue`.

    The value's `str` names the `CompareValue` task, and so its slug (a checkpoint
    key): use values whose `str` is the same every time the flow is built.

    Args:
        task: The task whose result decides; a plain value is compared as is.
        value: The value to compare the result with (not a task).

    Raises:
        TypeError: `value` is a task.
    """

    def __init__(self, task: Task, value: Any) -> None:
        if isinstance(value, Task):
            raise TypeError(
                f"case() compares a task's result with a plain value, not with the "
                f"task {value!r}; compare the two tasks in a task of your own instead"
            )
        self.task = task
        """The task whose result decides which tasks of the block run."""
        self.value = value
        """The value that result must equal."""
        # Per flow (a block may build more than one), in order: edges are added in order.
        self._tasks: dict[Flow, dict[Task, None]] = {}
        self._exits: list[ExitStack] = []

    def __repr__(self) -> str:
        return f"<case: {self.task!r} == {self.value!r}>"

    def __enter__(self) -> Self:
        block = ExitStack()
        block.callback(_active_case.reset, _active_case.set(self))
        block.enter_context(watch_added_tasks(self._add_task))
        self._exits.append(block)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # Leave the block first: the CompareValue then belongs to the enclosing case.
        self._exits.pop().close()
        if exc_type is None:
            self._wire()

    def _add_task(self, flow: Flow, task: Task) -> None:
        # An inner case holds its own tasks; its condition then joins this block.
        if _active_case.get() is self:
            self._tasks.setdefault(flow, {})[task] = None

    def _wire(self) -> None:
        for flow, tasks in self._tasks.items():
            condition = CompareValue(self.value, name=f"case({self.value})")
            condition.bind(value=self.task, flow=flow)
            for child in tasks:
                # A task with an upstream task in the block waits through that task.
                if tasks.keys().isdisjoint(flow.upstream_tasks(child)):
                    child.set_upstream(condition, flow=flow)
        self._tasks = {}


class Merge(Task):
    """Join conditional branches: return the first upstream result that is not None.

    Skipped branches give None. The trigger `not_all_skipped` skips the merge when
    every branch was skipped, and fails it when a branch failed.
    """

    def __init__(self, **options: Unpack[TaskOptions]) -> None:
        if options.setdefault("skip_on_upstream_skip", False):
            raise ConfigurationError(
                "A Merge must have skip_on_upstream_skip=False: it runs because some "
                "of its upstream tasks were skipped"
            )
        options.setdefault("trigger", triggers.not_all_skipped)
        super().__init__(**options)

    def run(self, **task_results: Any) -> Any:
        """Return the first result that is not None, in branch order (`task_1`, ...)."""
        for _, value in sorted(task_results.items(), key=_branch_order):
            if value is not None:
                return value
        return None


def _branch_order(item: tuple[str, Any]) -> tuple[str, int]:
    # task_2 comes before task_10: the order merge() was given the branches in.
    stem = item[0].rstrip("0123456789")
    digits = item[0][len(stem) :]
    return stem, int(digits) if digits else -1


def merge(*tasks: Task, flow: Flow | None = None, mapped: bool = False) -> Merge:
    """Join conditional branches into one task whose result is the branch's that ran.

    ```python
    with Flow("example") as flow:
        cond = condition()
        with case(cond, True):
            when_true = action_if_true()
        with case(cond, False):
            when_false = action_if_false()
        result = merge(when_true, when_false)
    ```

    Args:
        *tasks: The last task of each branch; their results are passed as `task_1`,
            `task_2`, ... and the first that is not None is the merge's result.
        flow: The flow to add the merge to (default: the active flow).
        mapped: Map the merge over its upstream results.

    Returns:
        The `Merge` task.
    """
    branches = {f"task_{index}": branch for index, branch in enumerate(tasks, 1)}
    return Merge().bind(**branches, flow=flow, mapped=mapped)


def switch(condition: Task, cases: Mapping[Any, Task], mapped: bool = False) -> None:
    """Run only the task whose key equals `condition`'s result; skip the others.

    Each task gets a `CompareValue` upstream task (tagged `switch`); tasks downstream
    of a skipped one skip too unless they set `skip_on_upstream_skip=False`.

    ```python
    with Flow("switch-flow") as flow:
        switch(condition, dict(a=a_branch, b=b_branch))
    ```

    Args:
        condition: The task whose result is compared with the keys of `cases`.
        cases: Each value to compare with, and the task that runs when it matches.
        mapped: Map the comparisons and branches over the condition's result.

    Raises:
        TypeError: A value of `cases` is not a task.
    """
    for value, branch in cases.items():
        if not isinstance(branch, Task):
            raise TypeError(
                f"switch() runs a task for each case, but case {value!r} is "
                f"{branch!r}; pass a task"
            )
        match = CompareValue(value, tags=["switch"]).bind(
            value=condition, mapped=mapped
        )
        branch.set_dependencies(upstream_tasks=[match], mapped=mapped)


@task(name="as_bool")
def _as_bool(x: Any) -> bool:
    return bool(x)


def ifelse(
    condition: Task,
    true_task: Task | None,
    false_task: Task | None,
    mapped: bool = False,
) -> None:
    """Run `true_task` if `condition`'s result is truthy, else `false_task`.

    The condition's result goes through `bool` (an `as_bool` task), then `switch`.
    The task that does not run is Skipped, as is everything downstream of it that
    keeps `skip_on_upstream_skip=True`.

    Args:
        condition: The task whose result decides.
        true_task: The task to run when the result is truthy (None: nothing).
        false_task: The task to run when it is falsy (None: nothing).
        mapped: Map the condition and branches over the condition's result.
    """
    cases = {v: t for v, t in ((True, true_task), (False, false_task)) if t is not None}
    if cases:
        switch(_as_bool(condition, mapped=mapped), cases, mapped=mapped)


def _is_result(value: Any) -> bool:
    return not (value is None or value is NoResult or isinstance(value, BaseException))


class FilterTask(Task):
    """Filter a list of results; by default drop None and exceptions.

    Meant for the results of a mapped task, where failed children leave exceptions.
    The trigger is `all_finished` and `skip_on_upstream_skip` is False, so it runs
    whatever its upstream tasks did.

    ```python
    even = FilterTask(filter_func=lambda x: x % 2 == 0)
    with Flow("filter") as flow:
        kept = even(numbers())
    ```

    Args:
        filter_func: Called with each result; True keeps it. The default keeps
            everything but None, NoResult and exceptions (signals included).
        log_func: Called with the filtered list; what it returns is logged at INFO.
        **options: Task options.
    """

    def __init__(
        self,
        filter_func: Callable[[Any], bool] | None = None,
        log_func: Callable[[list[Any]], object] | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        options.setdefault("skip_on_upstream_skip", False)
        options.setdefault("trigger", triggers.all_finished)
        self.filter_func = filter_func or _is_result
        """Decides which results to keep."""
        self.log_func = log_func
        """Turns the filtered list into a log message (None: no message)."""
        super().__init__(**options)

    def run(self, task_results: list[Any]) -> list[Any]:
        """Return the results `filter_func` keeps, in order."""
        kept = [r for r in task_results if self.filter_func(r)]
        if self.log_func is not None:
            (context.get("logger") or logger).info("%s", self.log_func(kept))
        return kept
