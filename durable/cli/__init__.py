"""The `durable` command: run, resume and register flows, and look at flows, runs, task
runs and logs.

Errors print one line and exit non-zero (no traceback unless `--debug`). Exit codes: 0 the
flow run succeeded, 1 it did not (or durable itself failed), 2 bad input, 3 the database is
unusable, 4 the disk is full (free space, then resume), 5 the database comes from a newer
durable, 130 interrupted (the run is resumable).
"""

from __future__ import annotations

from durable.cli import doctor, operations, reading, registry, running, tui, worker
from durable.cli.base import cli, main
from durable.cli.loading import load_flow, load_flows

__all__ = [
    "cli",
    "doctor",
    "load_flow",
    "load_flows",
    "main",
    "operations",
    "reading",
    "registry",
    "running",
    "tui",
    "worker",
]
