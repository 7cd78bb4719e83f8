"""The store's synchronous read API for browsing (the terminal UI): runs with filters, a
run with its task runs, graph, events and logs, flows, scheduled runs and workers, on a
read-only connection, with `PRAGMA data_version` as the cheap change check. It never
writes and never unpickles."""

from __future__ import annotations

from durable.store.browse.model import (
    AttemptSpan,
    FilterError,
    FlowHistory,
    FlowRow,
    HistoryRun,
    LogFilter,
    LogLine,
    ModelError,
    ReadModel,
    RunCounts,
    RunDetail,
    RunFilter,
    RunRow,
    ScheduledRow,
    StateEvent,
    TailLine,
    TaskCell,
    TaskRow,
    TaskRunDetail,
    WorkerRow,
    parse_filter,
    parse_log_filter,
)

__all__ = [
    "AttemptSpan",
    "FilterError",
    "FlowHistory",
    "FlowRow",
    "HistoryRun",
    "LogFilter",
    "LogLine",
    "ModelError",
    "ReadModel",
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
