"""Prefect 1 imported signals as `from prefect.engine import signals`; this keeps that line
working with `prefect` changed to `durable`."""

from __future__ import annotations

from durable.signals import (
    ENDRUN,
    FAIL,
    LOOP,
    PAUSE,
    RETRY,
    SKIP,
    SUCCESS,
    TRIGGERFAIL,
    VALIDATIONFAIL,
    Signal,
    signal_from_state,
)

__all__ = [
    "ENDRUN",
    "FAIL",
    "LOOP",
    "PAUSE",
    "RETRY",
    "SKIP",
    "SUCCESS",
    "TRIGGERFAIL",
    "VALIDATIONFAIL",
    "Signal",
    "signal_from_state",
]
