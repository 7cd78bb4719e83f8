"""A 50-task chain for the kill -9 test: each body leaves a trace that survives the kill.

Task `step-i` turns the previous value into `sha256(f"{previous} {i}")` (hex). Before it
returns, it appends `"{slug} {pid}\\n"` to the file named by `CRASH_SIDE_FILE`, with one
`os.write` on an `O_APPEND` descriptor, so the line counts real executions even when the
process is killed right after it.
"""

from __future__ import annotations

import hashlib
import os
import time

from durable import Flow, context, task

LENGTH = 50
"""Number of tasks in the chain: slugs step-1 ... step-50."""

FIRST_INPUT = "crash-chain"
"""The value fed to step-1."""

BODY_SECONDS = 0.02
"""How long each body keeps the CPU busy, so that a kill lands mid-chain."""

SIDE_FILE_ENV = "CRASH_SIDE_FILE"


def next_value(previous: str, index: int) -> str:
    """Return the value task `index` (1-based) computes from its upstream's value."""
    return hashlib.sha256(f"{previous} {index}".encode()).hexdigest()


def record_execution() -> None:
    """Append this task run's slug and this process's pid to the side file."""
    line = f"{context.task_slug} {os.getpid()}\n".encode()
    fd = os.open(
        os.environ[SIDE_FILE_ENV], os.O_APPEND | os.O_WRONLY | os.O_CREAT, 0o600
    )
    try:
        os.write(fd, line)  # one write: the line is whole or absent after a kill
    finally:
        os.close(fd)


@task
def step(previous: str, index: int) -> str:
    """Busy the CPU for a moment, leave a trace, and return the next chain value."""
    deadline = time.perf_counter() + BODY_SECONDS
    while time.perf_counter() < deadline:
        pass
    record_execution()
    return next_value(previous, index)


with Flow("crash-chain") as flow:
    value = step(FIRST_INPUT, 1)
    for index in range(2, LENGTH + 1):
        value = step(value, index)
