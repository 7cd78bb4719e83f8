"""The worker: creates scheduled runs, claims and launches them, and recovers crashed ones
(see docs/worker.md)."""

from __future__ import annotations

from durable.core.flow import CATCHUPS, Catchup
from durable.worker.launcher import (
    Handle,
    InProcessLauncher,
    Launcher,
    SubprocessLauncher,
    run_scheduled,
)
from durable.worker.loop import PassReport, Worker

__all__ = [
    "CATCHUPS",
    "Catchup",
    "Handle",
    "InProcessLauncher",
    "Launcher",
    "PassReport",
    "SubprocessLauncher",
    "Worker",
    "run_scheduled",
]
