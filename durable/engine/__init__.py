"""The async engine: flow and task runners, executors, and the one transition path."""

from __future__ import annotations

from durable.engine.executors import ConcurrentExecutor, Executor, LocalExecutor
from durable.engine.flow_runner import FlowRunner, run_flow, run_flow_async
from durable.engine.task_runner import TaskRunner

__all__ = [
    "ConcurrentExecutor",
    "Executor",
    "FlowRunner",
    "LocalExecutor",
    "TaskRunner",
    "run_flow",
    "run_flow_async",
]
