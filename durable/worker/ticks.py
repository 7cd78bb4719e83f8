"""Turning a schedule into run rows: which ticks are due, and what the catchup policy
makes of the missed ones. Pure functions of the schedule, the cursor and now."""

from __future__ import annotations

import hashlib
import json
import pickle
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pendulum

from durable.core.flow import Catchup
from durable.schedules.clocks import ClockEvent
from durable.store.records import NewScheduledRun, SchedulableFlowRecord

MAX_TICKS = 10_000
"""The most ticks one pass records per flow; the rest wait for the next pass."""


def parameters_hash(parameters: dict[str, Any]) -> str:
    """Return a stable hash of a tick's parameter defaults (part of its unique key)."""
    text = json.dumps(parameters, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_id_for(name: str, version: int, scheduled_for: float, params_hash: str) -> str:
    """Return the flow run id of a tick: derived from its unique key, so deterministic."""
    key = f"{name}\0{version}\0{scheduled_for!r}\0{params_hash}"
    return "s" + hashlib.sha256(key.encode()).hexdigest()[:15]


def due_events(
    schedule: Any, cursor: float, now: pendulum.DateTime
) -> tuple[list[ClockEvent], pendulum.DateTime | None]:
    """Return the schedule's events strictly after `cursor` and at or before `now`,
    and when the next one after those is (None: the schedule has ended)."""
    after = pendulum.from_timestamp(cursor, tz="UTC")
    due: list[ClockEvent] = []
    for event in schedule.events(after):
        if event.start_time > now or len(due) >= MAX_TICKS:
            return due, event.start_time
        due.append(event)
    return due, None


def plan_ticks(
    flow: SchedulableFlowRecord,
    events: Sequence[ClockEvent],
    *,
    now: pendulum.DateTime,
    catchup: Catchup,
    late_after: timedelta,
) -> list[NewScheduledRun]:
    """Decide which due ticks run and which are recorded as Skipped.

    `skip` runs only the newest due tick; `all` runs every one; `none` runs only the
    ticks that are not yet `late_after` overdue. Every tick not run is still a row.
    """
    rows = []
    newest = len(events) - 1
    for index, event in enumerate(events):
        late = now - event.start_time >= late_after
        if (
            catchup == "all"
            or (catchup == "skip" and index == newest)
            or (catchup == "none" and not late)
        ):
            status, message = "Scheduled", None
        else:
            status = "Skipped"
            message = f"missed tick skipped by catchup policy {catchup!r}"
        at = event.start_time.timestamp()
        params = dict(event.parameter_defaults)
        digest = parameters_hash(params)
        rows.append(
            NewScheduledRun(
                id=run_id_for(flow.name, flow.version, at, digest),
                flow_name=flow.name, flow_version=flow.version, scheduled_for=at,
                parameters_hash=digest, parameters=pickle.dumps(params),
                status=status, message=message, created_at=now.timestamp(),
            )
        )  # fmt: skip
    return rows
