"""The reliability campaign's flows. Every task body leaves side-log lines that survive
a kill: `start <run> <slug> <task_run_id> <attempt> <pid>` before its work and `end ...`
after it, each one `os.write` on an O_APPEND descriptor of `$REL_SIDE_LOG`.

- `many`: 500 independent tasks `t000`..`t499`; task i waits 5-30 ms (fixed per i,
  times `$REL_TASK_SCALE`) and returns sha256(f"task {i}") in hex. Its executor runs 4
  bodies at once (RELIABILITY.md's "4 workers": durable runs a flow run in one process).
- `slow`: `s1`..`s3`, each waiting `seconds` (a parameter) in 10 ms steps.
- `poison`: 99 quick tasks, then `p099`, which kills its own process (parameter
  `how`: `kill` sends SIGKILL, `segv` reads address 0 through ctypes).
- `big`: one task returning a 50 MB bytes value (sha256 of a counter, repeated).

This file is self-contained (no sibling imports): a registered copy pickles it by value.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import signal
import threading

from durable import Flow, Parameter, context, task
from durable.executors import ConcurrentExecutor

TASKS = 500
BIG_BYTES = 50 * 1024 * 1024


def side(event: str) -> None:
    """Append one execution line for the running task body to `$REL_SIDE_LOG`."""
    path = os.environ.get("REL_SIDE_LOG")
    if not path:
        return
    line = (
        f"{event} {context.flow_run_id} {context.task_slug} {context.task_run_id} "
        f"{context.attempt} {os.getpid()}\n"
    )
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())  # one write: whole or absent after a kill
    finally:
        os.close(fd)


def pause(seconds: float) -> None:
    """Wait `seconds` times `$REL_TASK_SCALE` (without holding the GIL)."""
    scaled = seconds * float(os.environ.get("REL_TASK_SCALE") or "1")
    if scaled > 0:
        threading.Event().wait(scaled)


def millis(i: int) -> int:
    """Task i's duration in ms: 5..30, fixed per i."""
    return 5 + hashlib.sha256(f"ms {i}".encode()).digest()[0] % 26


@task
def work(i: int) -> str:
    """Wait 5-30 ms and return sha256(f"task {i}")."""
    side("start")
    pause(millis(i) / 1000)
    value = hashlib.sha256(f"task {i}".encode()).hexdigest()
    side("end")
    return value


with Flow("many", executor=ConcurrentExecutor(4)) as many:
    for index in range(TASKS):
        work(index, task_args={"slug": f"t{index:03d}"})


@task
def linger(seconds: float, step: int) -> int:
    """Wait `seconds` of real time, in 10 ms slices."""
    side("start")
    slices = max(1, round(seconds * 100))
    for _ in range(slices):
        threading.Event().wait(seconds / slices)
    side("end")
    return step


with Flow("slow") as slow:
    seconds = Parameter("seconds", default=10.0)
    for number in (1, 2, 3):
        linger(seconds, number, task_args={"slug": f"s{number}"})


@task
def quick(i: int) -> int:
    """Do nothing much."""
    side("start")
    side("end")
    return i


@task
def crash(how: str) -> None:
    """Kill this process: SIGKILL, or a segfault reading address 0."""
    side("start")
    if how == "segv":
        ctypes.string_at(0)
    os.kill(os.getpid(), signal.SIGKILL)


with Flow("poison") as poison:
    how = Parameter("how", default="kill")
    for index in range(99):
        quick(index, task_args={"slug": f"q{index:03d}"})
    crash(how, task_args={"slug": "p099"})


@task
def blob() -> bytes:
    """Return a 50 MB value: sha256 of a counter, repeated."""
    side("start")
    chunk = b"".join(hashlib.sha256(str(n).encode()).digest() for n in range(32768))
    value = chunk * (BIG_BYTES // len(chunk))
    side("end")
    return value


with Flow("big") as big:
    blob(task_args={"slug": "blob"})
