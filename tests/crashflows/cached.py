"""A flow whose cached task finishes before a later task hangs, for the kill -9 test.

Each body appends `"{slug} {pid}\\n"` to the file named by `CRASH_SIDE_FILE` (one write on
an `O_APPEND` descriptor, so a line is whole or absent after a kill). With `CRASH_HANG`
set, `hang` then blocks until the test kills the process.
"""

from __future__ import annotations

import os
import threading
from datetime import timedelta

from durable import Flow, context, task


def trace() -> None:
    """Append this task run's slug and this process's pid to the side file."""
    line = f"{context.task_slug} {os.getpid()}\n".encode()
    fd = os.open(
        os.environ["CRASH_SIDE_FILE"], os.O_APPEND | os.O_WRONLY | os.O_CREAT, 0o600
    )
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


@task(cache_for=timedelta(hours=1))
def expensive(x: int) -> int:
    """The work worth caching."""
    trace()
    return x * 7


@task
def hang(value: int) -> int:
    """Leave a trace, then wait for the kill when the test asks for one."""
    trace()
    if os.environ.get("CRASH_HANG"):
        threading.Event().wait(60)
    return value + 1


with Flow("crash-cache") as flow:
    hang(expensive(6))
