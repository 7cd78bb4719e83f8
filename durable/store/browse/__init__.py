"""The store's synchronous read API for browsing (the terminal UI): runs with filters, a
run with its task runs, graph, events and logs, flows, scheduled runs and workers, on a
read-only connection, with `PRAGMA data_version` as the cheap change check. It never
writes and never unpickles."""

from __future__ import annotations

from durable.store.browse.connection import ModelError
from durable.store.browse.filters import (
    FilterError,
    LogFilter,
    RunFilter,
    parse_filter,
    parse_log_filter,
)
from durable.store.browse.model import ReadModel
from durable.store.browse.records import (
    ActionRow,
    AttemptSpan,
    FlowHistory,
    FlowRow,
    HistoryRun,
    LogLine,
    ParameterRow,
    ResultRow,
    RunCounts,
    RunDetail,
    RunRow,
    ScheduledRow,
    StateEvent,
    TailLine,
    TaskCell,
    TaskRow,
    TaskRunDetail,
    WorkerRow,
)

__all__ = [
    "ActionRow",
    "AttemptSpan",
    "FilterError",
    "FlowHistory",
    "FlowRow",
    "HistoryRun",
    "LogFilter",
    "LogLine",
    "ModelError",
    "ParameterRow",
    "ReadModel",
    "ResultRow",
    "RunCounts",
    "RunDetail",
    "RunFilter",
    "RunRow",
    "ScheduledRow",
    "StateEvent",
    "TailLine",
    "TaskCell",
    "TaskRow",
    "TaskRunDetail",
    "WorkerRow",
    "parse_filter",
    "parse_log_filter",
]
