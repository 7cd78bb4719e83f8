"""Which task runs a restart runs again: a pure plan over a run's task runs and its graph.

The engine's restart (`durable restart`, a worker's queued restart) and the terminal UI's
dry-run preview both call `plan_restart`, so what the preview lists is what runs.

"Retry from failure" (Prefect 1's restart from failed) resets every task run in a
restartable state and everything downstream of it: several failed branches are several
roots, and a mapped task's children that succeeded are reused while the failed ones run
again. "From a task" resets that task (all of its children) and everything downstream.
Everything else is reused with its checkpointed result.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RESTARTABLE = frozenset({"Failed", "TimedOut", "TriggerFailed", "Cancelled"})
"""States a restart runs again (as Prefect 1's "restart from failed")."""


@dataclass(frozen=True, slots=True)
class PlannedTaskRun:
    """One task run in a restart plan, and why it is reset or reused."""

    slug: str
    name: str
    map_index: int
    """-1 for a task that is not a mapped child."""
    state: str
    """Its stored state now."""
    reason: str
    """`Failed`, `downstream of load_db`, `reused (Success)`..."""


@dataclass(frozen=True, slots=True)
class RestartPlan:
    """What a restart does to a run's task runs."""

    roots: tuple[str, ...]
    """The task slugs the restart starts from."""
    downstream: tuple[str, ...]
    """The task slugs below a root (all of a mapped one's children run again)."""
    reset: tuple[PlannedTaskRun, ...]
    """Task runs that run again, in the order given."""
    reused: tuple[PlannedTaskRun, ...]
    """Task runs kept as they are, with their results."""

    @property
    def empty(self) -> bool:
        """Whether the restart would run nothing again."""
        return not self.reset


def plan_restart(
    task_runs: Iterable[Any],
    edges: Iterable[tuple[str, str]],
    *,
    from_tasks: Collection[str] | None = None,
) -> RestartPlan:
    """Plan a restart of one run.

    Args:
        task_runs: the run's task runs, objects with `slug`, `name`, `map_index` and
            `state` (a mapped task's parent has map_index -1, its children 0, 1, ...).
        edges: the flow's edges as (upstream slug, downstream slug).
        from_tasks: None to retry from failure; else the slugs to restart from.

    Raises:
        ValueError: a slug in `from_tasks` is not a task of the run.
    """
    runs = list(task_runs)
    slugs = {run.slug for run in runs}
    downstream: dict[str, set[str]] = defaultdict(set)
    for upstream, down in edges:
        downstream[upstream].add(down)
    if from_tasks is None:
        failed = {run.slug for run in runs if run.state in RESTARTABLE}
        # A failed task below another one (TriggerFailed, say) is not a root of its own.
        roots = _ordered(failed - _below(list(failed), downstream), runs)
        reset = {
            _key(run): run.state
            for run in runs
            if run.slug in roots and run.state in RESTARTABLE
        }
    else:
        unknown = sorted(set(from_tasks) - slugs)
        if unknown:
            raise ValueError(
                f"No task {', '.join(map(repr, unknown))} in this run; its tasks are: "
                + ", ".join(_ordered(slugs, runs))
            )
        roots = _ordered(set(from_tasks), runs)
        reset = {_key(run): "from here" for run in runs if run.slug in from_tasks}
    below = _below(roots, downstream)
    cause = _causes(roots, downstream)
    for run in runs:
        if run.slug in below and _key(run) not in reset:
            reset[_key(run)] = f"downstream of {cause[run.slug]}"
    return RestartPlan(
        roots=tuple(roots),
        downstream=tuple(_ordered(below, runs)),
        reset=tuple(
            _planned(run, reset[_key(run)]) for run in runs if _key(run) in reset
        ),
        reused=tuple(
            _planned(run, f"reused ({run.state})")
            for run in runs
            if _key(run) not in reset
        ),
    )


def _key(run: Any) -> tuple[str, int]:
    return run.slug, run.map_index


def _planned(run: Any, reason: str) -> PlannedTaskRun:
    return PlannedTaskRun(run.slug, run.name, run.map_index, run.state, reason)


def _ordered(chosen: set[str], runs: Sequence[Any]) -> list[str]:
    """`chosen` in the order the run's task runs come in."""
    seen: dict[str, None] = {}
    for run in runs:
        if run.slug in chosen:
            seen.setdefault(run.slug)
    return list(seen)


def _below(roots: Sequence[str], downstream: Mapping[str, set[str]]) -> set[str]:
    """Every slug strictly downstream of a root."""
    found: set[str] = set()
    stack = list(roots)
    while stack:
        for down in downstream.get(stack.pop(), ()):
            if down not in found:
                found.add(down)
                stack.append(down)
    return found


def _causes(roots: Sequence[str], downstream: Mapping[str, set[str]]) -> dict[str, str]:
    """For each slug below a root, the first root (in order) it is downstream of."""
    cause: dict[str, str] = {}
    for root in roots:
        for slug in _below([root], downstream):
            cause.setdefault(slug, root)
    return cause
