"""Test hooks of the reliability campaign: named crash points and commit acknowledgements.

Both are off unless an environment variable turns them on, and off they cost one falsy
global check on the paths they sit on (the checkpoint writer's loop among them).

- `DURABLE_CRASH_AT=point:n[,point:n...]` kills this process with SIGKILL the `n`-th time
  it arrives at `point` (counted per process, from 1). The points are `POINTS`.
- `DURABLE_ACK=PATH` appends one line per committed write that a test can check against
  what the database holds after a crash: `ACK <kind> <id> <state>`, written after COMMIT
  returned, one `os.write` per line on an `O_APPEND` descriptor (`-` means stdout). Kinds:
  `result` (a task run's state committed with its result), `task` (any other task run
  state), `run` (a flow run's state), `claim` (a scheduled run claimed by a worker: the
  id is the scheduled run's, the last field the worker's name).
"""

from __future__ import annotations

import os
import signal
import threading

CRASH_ENV = "DURABLE_CRASH_AT"
ACK_ENV = "DURABLE_ACK"

POINTS: dict[str, str] = {
    "after_claim_commit": "a worker's claim of a scheduled run has committed; its"
    " process is not started",
    "before_result_commit": "a batch holding a task run's result is written, not"
    " committed",
    "after_result_commit_before_ack": "a batch holding a task run's result has"
    " committed; no ACK line is written yet",
    "after_tick_insert_before_cursor": "schedule ticks are inserted, inside the"
    " transaction that moves the flow's cursor",
    "mid_migration": "one schema migration step is applied, inside the migrating"
    " transaction",
    "after_checkpoint_start": "a WAL checkpoint has been asked for (the worker's"
    " maintenance step)",
    "in_finally_of_worker_shutdown": "a worker is stopping: its runs are drained, its"
    " row not yet removed",
}
"""The named crash points and where each one sits."""


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, count = item.partition(":")
        if name not in POINTS:
            raise ValueError(
                f"{CRASH_ENV}: unknown crash point {name!r}; "
                f"known points: {', '.join(sorted(POINTS))}"
            )
        try:
            armed[name] = int(count or "1")
        except ValueError:
            raise ValueError(
                f"{CRASH_ENV}: {item!r} needs a whole number of arrivals after ':'"
            ) from None
    return armed


_armed = _parse(os.environ.get(CRASH_ENV, ""))
_arrivals: dict[str, int] = {}
_lock = threading.Lock()
_ack_fd: int | None = None
ACKING = bool(os.environ.get(ACK_ENV))
"""Whether commits are acknowledged (DURABLE_ACK is set)."""
TRACING = ACKING or bool(_armed)
"""Whether writes carry their ACK description (acks or crash points are on)."""


def crash_point(name: str) -> None:
    """Kill this process with SIGKILL if `name` is armed and this is its n-th arrival."""
    if not _armed or name not in _armed:
        return
    with _lock:
        _arrivals[name] = arrivals = _arrivals.get(name, 0) + 1
    if arrivals == _armed[name]:
        os.kill(os.getpid(), signal.SIGKILL)


def ack(lines: list[str]) -> None:
    """Write `ACK <line>` for each line, if acknowledgements are on."""
    global _ack_fd
    if not ACKING or not lines:
        return
    if _ack_fd is None:
        target = os.environ[ACK_ENV]
        _ack_fd = (
            1
            if target == "-"
            else os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        )
    os.write(_ack_fd, "".join(f"ACK {line}\n" for line in lines).encode())
