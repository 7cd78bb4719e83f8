"""What registration stores about a flow: a copy that a worker can load, its schedule
(pickled, and described in one line), and a hash that tells a changed flow from an
unchanged one. `registry.load_copy` loads them back."""

from __future__ import annotations

import hashlib
import pickle
import sys
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import cloudpickle

from durable.core.identity import parameters_of, shape
from durable.errors import ConfigurationError
from durable.schedules import (
    CronClock,
    DatesClock,
    IntervalClock,
    RRuleClock,
    Schedule,
)
from durable.schedules.clocks import Clock
from durable.store.records import NewRegistration

if TYPE_CHECKING:
    from durable.core.flow import Flow

_UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def package_flow(
    flow: Flow, *, file: Path | None, registered_at: float
) -> NewRegistration:
    """Serialize a flow and its schedule for registration.

    The copy must load back as the same flow (same fingerprint), or the flow is refused
    here rather than by a worker later.

    Args:
        flow: the flow, as its file built it.
        file: the file it was loaded from; its bytes count in the flow's hash.
        registered_at: when the registration happens (Unix seconds).

    Raises:
        ConfigurationError: the schedule is not a durable Schedule, or the flow or its
            schedule cannot be pickled, or the copy does not load back as the same flow.
    """
    schedule = flow.schedule
    if schedule is not None and not isinstance(schedule, Schedule):
        raise ConfigurationError(
            f"Flow {flow.name!r} has schedule={schedule!r}, which is not a durable "
            "Schedule; build it with durable.schedules (e.g. IntervalSchedule)"
        )
    fingerprint = flow.fingerprint()
    blob = _dumps(flow, flow.name, "the flow")
    copy = _loads_back(blob, flow.name)
    if copy.fingerprint() != fingerprint:
        raise ConfigurationError(
            f"Flow {flow.name!r} does not load back from its serialized copy as the "
            "same flow (its tasks or edges change through pickling), so a worker "
            "could not run it"
        )
    text = None if schedule is None else describe_schedule(schedule)
    pickled = None if schedule is None else _dumps(schedule, flow.name, "its schedule")
    sources = dict.fromkeys(
        Path(p) for p in (file, flow.source_path) if p is not None and Path(p).is_file()
    )
    return NewRegistration(
        name=flow.name,
        fingerprint=fingerprint,
        source_path=flow.source_path or (None if file is None else str(file)),
        flow_blob=blob,
        flow_hash=flow_hash(sources, text, blob),
        schedule=pickled,
        schedule_text=text,
        registered_at=registered_at,
        catchup=flow.catchup,
        graph=shape(flow),
        parameters=parameters_of(flow),
    )


def flow_hash(sources: Iterable[Path], schedule_text: str | None, blob: bytes) -> str:
    """Return a sha256 that stays the same while the flow's code and schedule do.

    The pickled bytes themselves cannot be compared: cloudpickle gives each class a
    flow file defines a random id on every load, and a set of strings (a task's tags)
    pickles in an order that changes with each process's hash seed. So the hash covers
    what the copy was built from: the source files, the schedule's description, and the
    Python version (code objects do not load across versions). Only a flow built
    without a file falls back to its pickled bytes, which errs toward a new version.
    """
    digest = hashlib.sha256()
    digest.update(f"python {sys.version_info[0]}.{sys.version_info[1]}\0".encode())
    digest.update(f"schedule {schedule_text}\0".encode())
    files = list(sources)
    for path in files:
        data = path.read_bytes()
        digest.update(f"file {len(data)}\0".encode() + data)
    if not files:
        digest.update(blob)
    return digest.hexdigest()


def describe_schedule(schedule: Schedule) -> str:
    """Return a schedule in one line, e.g. "every hour from 2026-01-01 00:00 UTC"."""
    text = "; ".join(_describe_clock(clock) for clock in schedule.clocks)
    filters = [*schedule.filters, *schedule.or_filters, *schedule.not_filters]
    extras = [
        _count(len(filters), "filter"),
        _count(len(schedule.adjustments), "adjustment"),
    ]
    extra = ", ".join(e for e in extras if e)
    return f"{text} (+ {extra})" if extra else text


def _describe_clock(clock: Clock) -> str:
    if isinstance(clock, DatesClock):
        first, last, count = clock.dates[0], clock.dates[-1], len(clock.dates)
        text = (
            f"once at {_at(first)}"
            if count == 1
            else f"{count} dates from {_at(first)} to {_at(last)}"
        )
        return text + _parameters(clock)
    if isinstance(clock, IntervalClock):
        text = f"every {_span(clock.interval)} from {_at(clock.anchor)}"
    elif isinstance(clock, CronClock):
        text = f"cron {clock.cron.text!r} in {clock.timezone.name}"
        text += f" from {_at(clock.start_date)}" if clock.start_date else ""
    elif isinstance(clock, RRuleClock):
        text = f"rrule {' '.join(str(clock.rrule_obj).split())}"
    else:
        text = " ".join(repr(clock).split())
    text += f" until {_at(clock.end_date)}" if clock.end_date else ""
    return text + _parameters(clock)


def _parameters(clock: Clock) -> str:
    names = sorted(clock.parameter_defaults)
    return f" with {', '.join(names)}" if names else ""


def _span(span: timedelta) -> str:
    """Format a positive span in words: "hour", "5 minutes", "1 day 12 hours"."""
    if span % timedelta(seconds=1):
        return f"{span.total_seconds():g} seconds"
    seconds, parts = int(span.total_seconds()), list[tuple[int, str]]()
    for unit, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append((count, unit))
    if len(parts) == 1 and parts[0][0] == 1:
        return parts[0][1]  # "every hour", not "every 1 hour"
    return " ".join(
        f"{count} {unit}{'s' if count > 1 else ''}" for count, unit in parts
    )


def _at(when: datetime) -> str:
    """Format an instant in its own zone: "2026-01-01 09:00 Europe/Berlin"."""
    shown = when.strftime("%Y-%m-%d %H:%M:%S" if when.second else "%Y-%m-%d %H:%M")
    zone = getattr(when.tzinfo, "name", None) or when.strftime("%z")
    return f"{shown} {zone}"


def _count(count: int, noun: str) -> str:
    return "" if not count else f"{count} {noun}{'s' if count > 1 else ''}"


def _dumps(value: object, flow_name: str, what: str) -> bytes:
    try:
        data: bytes = cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # pickling calls the user's reducers: anything can fail
        raise ConfigurationError(
            f"Flow {flow_name!r} cannot be registered: {what} cannot be pickled "
            f"({type(exc).__name__}: {exc}); keep unpicklable objects (connections, "
            "locks, open files) out of tasks and constants, or create them in a task"
        ) from exc
    return data


def _loads_back(blob: bytes, flow_name: str) -> Flow:
    try:
        copy: Flow = pickle.loads(blob)
    except Exception as exc:  # unpickling calls the user's reducers: anything can fail
        raise ConfigurationError(
            f"Flow {flow_name!r} cannot be registered: its pickled copy does not load "
            f"back ({type(exc).__name__}: {exc})"
        ) from exc
    return copy
