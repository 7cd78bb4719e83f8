"""A map on a Dask LocalCluster for the kill -9 test: each body leaves a trace.

`work[i]` keeps a Dask worker busy for a moment, then appends `"work-{i} {phase}\\n"` to the
file named by `CRASH_SIDE_FILE` (`phase` is `CRASH_PHASE`: which process generation ran
it) with one `os.write` on an `O_APPEND` descriptor, so a line counts a real execution even
when everything is killed right after it.
"""

from __future__ import annotations

import os
import time

from durable import Flow, context, task
from durable.executors import DaskExecutor

WIDTH = 24
BODY_SECONDS = 0.15


def record(label: str) -> None:
    """Append `label phase` to the side file in one write."""
    line = f"{label} {os.environ['CRASH_PHASE']}\n".encode()
    fd = os.open(
        os.environ["CRASH_SIDE_FILE"], os.O_APPEND | os.O_WRONLY | os.O_CREAT, 0o600
    )
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@task
def items() -> list[int]:
    """The inputs to map over."""
    record("items")
    return list(range(WIDTH))


@task
def work(item: int) -> int:
    """Keep a worker busy, leave a trace, return the square."""
    deadline = time.perf_counter() + BODY_SECONDS
    while time.perf_counter() < deadline:
        pass
    record(f"work-{context.map_index}")
    return item * item


@task
def total(squares: list[int]) -> int:
    """Reduce the squares."""
    return sum(squares)


cluster = {
    "n_workers": 2,
    "threads_per_worker": 1,
    "processes": True,
    "dashboard_address": None,
    "memory_limit": None,
}
with Flow("crash-dask", executor=DaskExecutor(cluster_kwargs=cluster)) as flow:
    total(work.map(items()))
