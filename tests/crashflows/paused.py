"""A flow that pauses for approval and then keeps working on an independent branch.

`approve_me` waits for `durable approve`; the `work-*` chain runs meanwhile and leaves a
trace per body in the file named by `CRASH_SIDE_FILE`, so a test can kill the process
while the task is paused.
"""

from __future__ import annotations

import os
import time

from durable import Flow, context, task, triggers


def trace() -> None:
    """Append this task run's slug to the side file (one write: whole or absent)."""
    fd = os.open(os.environ["CRASH_SIDE_FILE"], os.O_APPEND | os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, f"{context.task_slug}\n".encode())
    finally:
        os.close(fd)


@task(trigger=triggers.manual_only)
def approve_me() -> str:
    """Runs only once approved."""
    trace()
    return "approved"


@task
def work(previous: int) -> int:
    """A slow step of the independent branch."""
    deadline = time.perf_counter() + 0.05
    while time.perf_counter() < deadline:
        pass
    trace()
    return previous + 1


with Flow("crash-paused") as flow:
    approve_me()
    value = work(0)
    for _ in range(20):
        value = work(value)
