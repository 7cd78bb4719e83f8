"""Helpers for executor tests: side effects that survive process boundaries.

Task bodies may run in another process (ProcessExecutor, Dask), so they report through
files, never through the test's memory: a `Tally` counts executions, a `Gate` holds a body
until the test opens it.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

MAX_HOLD_SECONDS = 20.0
"""A held body gives up after this long, so a broken test cannot hang a worker."""


class Tally:
    """Counts task body executions in a file; each line is `label pid`."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def record(self, label: str) -> None:
        """Append one line with one write on an O_APPEND descriptor (whole or absent)."""
        fd = os.open(self.path, os.O_APPEND | os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{label} {os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def lines(self) -> list[tuple[str, int]]:
        if not os.path.exists(self.path):
            return []
        with open(self.path) as file:
            return [(label, int(pid)) for label, pid in map(str.split, file)]

    def labels(self) -> list[str]:
        return [label for label, _ in self.lines()]

    def count(self, label: str) -> int:
        return self.labels().count(label)

    def pids(self, label: str | None = None) -> set[int]:
        return {pid for name, pid in self.lines() if label in (None, name)}

    def wait_for(self, label: str, seconds: float = MAX_HOLD_SECONDS) -> None:
        """Block (a thread) until `label` has been recorded; fail after `seconds`."""
        deadline = time.monotonic() + seconds
        tick = threading.Event()
        while label not in self.labels():
            assert time.monotonic() < deadline, f"{label!r} was never recorded"
            tick.wait(0.01)


class Gate:
    """A file-backed event: bodies wait until the test opens it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def open(self) -> None:
        Path(self.path).touch()

    def wait(self, seconds: float = MAX_HOLD_SECONDS) -> bool:
        """Return True once open, False after `seconds` (polling, any process)."""
        deadline = time.monotonic() + seconds
        tick = threading.Event()
        while not os.path.exists(self.path):
            if time.monotonic() > deadline:
                return False
            tick.wait(0.01)
        return True


def is_running(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
