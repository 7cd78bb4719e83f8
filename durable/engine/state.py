"""Prefect 1 imported states as `from prefect.engine.state import Success`; this keeps that
line working with `prefect` changed to `durable`."""

from __future__ import annotations

from durable.states import (
    Cached,
    Cancelled,
    Cancelling,
    Failed,
    Finished,
    Looped,
    Mapped,
    NoResult,
    Paused,
    Pending,
    Resume,
    Retrying,
    Running,
    Scheduled,
    Skipped,
    Success,
    TimedOut,
    TriggerFailed,
)

__all__ = [
    "Cached",
    "Cancelled",
    "Cancelling",
    "Failed",
    "Finished",
    "Looped",
    "Mapped",
    "NoResult",
    "Paused",
    "Pending",
    "Resume",
    "Retrying",
    "Running",
    "Scheduled",
    "Skipped",
    "Success",
    "TimedOut",
    "TriggerFailed",
]
