"""durable: Prefect-1-style workflows, checkpointed to one SQLite file, resumable.

Write flows as with Prefect 1 (`@task`, `with Flow(...)`, `Parameter`, `flow.run()`); every
state transition and task result is stored, so a run that crashes resumes where it stopped.
"""

from __future__ import annotations

from durable import context, signals, states, triggers
from durable.core.edge import Edge, flatten, unmapped
from durable.core.flow import Flow
from durable.core.parameter import DateTimeParameter, Parameter
from durable.core.secret import Secret
from durable.core.task import Task, task
from durable.errors import (
    ConfigurationError,
    DurableError,
    FlowChangedError,
    ParameterError,
    RunNotFoundError,
    SchemaTooNewError,
    SerializationError,
    StoreError,
)
from durable.executors import ConcurrentExecutor, LocalExecutor
from durable.tasks.control_flow import case, ifelse, merge, switch

__version__ = "0.1.0"

__all__ = [
    "ConcurrentExecutor",
    "ConfigurationError",
    "DateTimeParameter",
    "DurableError",
    "Edge",
    "Flow",
    "FlowChangedError",
    "LocalExecutor",
    "Parameter",
    "ParameterError",
    "RunNotFoundError",
    "SchemaTooNewError",
    "Secret",
    "SerializationError",
    "StoreError",
    "Task",
    "case",
    "context",
    "flatten",
    "ifelse",
    "merge",
    "signals",
    "states",
    "switch",
    "task",
    "triggers",
    "unmapped",
]
