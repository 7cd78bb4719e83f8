"""A 200-child map for the kill -9 test: each child leaves a trace that survives the kill.

Child i returns `sha256(f"item {i}")` (hex) after appending `"{i} {pid}\\n"` to the file
named by `CRASH_SIDE_FILE` with one `os.write` on an `O_APPEND` descriptor.
"""

from __future__ import annotations

import hashlib
import os
import time

from durable import Flow, context, task

WIDTH = 200
BODY_SECONDS = 0.005


@task
def items() -> list[int]:
    """The inputs to map over."""
    return list(range(WIDTH))


@task
def digest(item: int) -> str:
    """Busy the CPU for a moment, leave a trace, and return the item's digest."""
    deadline = time.perf_counter() + BODY_SECONDS
    while time.perf_counter() < deadline:
        pass
    line = f"{context.map_index} {os.getpid()}\n".encode()
    fd = os.open(os.environ["CRASH_SIDE_FILE"], os.O_APPEND | os.O_WRONLY | os.O_CREAT)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
    return hashlib.sha256(f"item {item}".encode()).hexdigest()


@task
def count(digests: list[str]) -> int:
    """Reduce: how many digests there are."""
    return len(digests)


with Flow("crash-map") as flow:
    count(digest.map(items()))
