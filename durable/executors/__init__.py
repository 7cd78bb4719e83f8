"""Executors: where task bodies run, chosen per flow or per run.

`LocalExecutor` (the default: one task at a time, on the engine's thread),
`ConcurrentExecutor` (threads and the event loop; `LocalDaskExecutor` is Prefect 1's name
for it), `ProcessExecutor` (worker processes: crash isolation and hard timeouts) and
`DaskExecutor` (a Dask cluster). Whatever runs the bodies, only the flow's own process
writes checkpoints. See docs/executors.md.
"""

from __future__ import annotations

from durable.executors.base import (
    Executor,
    RemoteException,
    TransferError,
    WorkerCrashedError,
)
from durable.executors.choice import executor_from_spec
from durable.executors.dask import DaskExecutor
from durable.executors.local import ConcurrentExecutor, LocalDaskExecutor, LocalExecutor
from durable.executors.processes import ProcessExecutor

__all__ = [
    "ConcurrentExecutor",
    "DaskExecutor",
    "Executor",
    "LocalDaskExecutor",
    "LocalExecutor",
    "ProcessExecutor",
    "RemoteException",
    "TransferError",
    "WorkerCrashedError",
    "executor_from_spec",
]
