"""The store's synchronous read API for browsing (the terminal UI): runs with filters, a
run with its task runs, graph, events and logs, flows, scheduled runs and workers, on a
read-only connection, with `PRAGMA data_version` as the cheap change check. It never
writes and never unpickles."""

from __future__ import annotations

from durable.store.browse.model import (
    AttemptSpan,
    FilterError,
    FlowRow,
    LogLine,
    ModelError,
    ReadModel,
    RunDetail,
    RunFilter,
    RunRow,
    ScheduledRow,
    StateEvent,
    TaskRow,
    WorkerRow,
    parse_filter,
)

__all__ = [
    "AttemptSpan",
    "FilterError",
    "FlowRow",
    "LogLine",
    "ModelError",
    "ReadModel",
    "RunDetail",
    "RunFilter",
    "RunRow",
    "ScheduledRow",
    "StateEvent",
    "TaskRow",
    "WorkerRow",
    "parse_filter",
]
