"""Telling a dead run owner from a live one: a process is named by its pid plus a start
token (boot id and start time from /proc), so a reused pid is not mistaken for the owner.

Only an owner on this machine can be proved dead; one elsewhere (another host, or a token
this machine cannot read) is judged by its lease alone.
"""

from __future__ import annotations

import os
import socket
from enum import Enum
from pathlib import Path


class Liveness(Enum):
    """What can be known about a run owner's process from here."""

    ALIVE = "alive"
    """The same process (pid and start token match) is running on this machine."""
    DEAD = "dead"
    """Provably gone: no such pid here, or the pid belongs to a newer process."""
    UNKNOWN = "unknown"
    """Not checkable from here (another host, or no /proc): trust the lease."""


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str | None:
    # Field 22 of /proc/<pid>/stat, counted after the ")" that ends the command name
    # (which may itself contain spaces and parentheses).
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[19]


def process_token(pid: int) -> str:
    """Return the start token of process `pid`: host, boot id and start time.

    Returns a token with an empty start time where /proc is not available.
    """
    return f"{socket.gethostname()}|{_boot_id()}|{_start_ticks(pid) or ''}"


def liveness(pid: int | None, token: str | None) -> Liveness:
    """Judge whether the process `pid` that wrote `token` is still running."""
    if pid is None or not token:
        return Liveness.UNKNOWN
    host, boot, started = [*token.split("|"), "", ""][:3]
    if host != socket.gethostname():
        return Liveness.UNKNOWN
    if boot and boot != _boot_id():
        return (
            Liveness.DEAD
        )  # the machine rebooted since: every process of then is gone
    if not _pid_exists(pid):
        return Liveness.DEAD
    if not started:
        return Liveness.UNKNOWN
    current = _start_ticks(pid)
    if current is None:
        return Liveness.DEAD
    return Liveness.ALIVE if current == started else Liveness.DEAD


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    # A zombie (exited, not yet reaped) still answers signal 0 but is not running.
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return state[state.rindex(")") + 2 :].split()[0] != "Z"
