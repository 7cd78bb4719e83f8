"""Executors live in `durable.executors`; this module keeps the engine's old import path."""

from __future__ import annotations

from durable.executors import (
    ConcurrentExecutor,
    DaskExecutor,
    Executor,
    LocalDaskExecutor,
    LocalExecutor,
    ProcessExecutor,
)

__all__ = [
    "ConcurrentExecutor",
    "DaskExecutor",
    "Executor",
    "LocalDaskExecutor",
    "LocalExecutor",
    "ProcessExecutor",
]
