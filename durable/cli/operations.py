"""Operating scheduled pipelines: trigger, cancel, backfill, schedule pause|resume|runs,
and workers. Each command is one short transaction against the database the workers use
(see docs/worker.md); none of them runs a flow itself."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import click
import pendulum

from durable import control, views
from durable.cli.base import (
    EXIT_FAILED,
    Settings,
    cli,
    fail,
    pass_settings,
    reported,
    with_store,
)
from durable.cli.loading import parse_params
from durable.control import UNFINISHED
from durable.errors import DurableError
from durable.liveness import Liveness, liveness
from durable.schedules.clocks import ClockEvent
from durable.store import Store
from durable.store.control import CancelOutcome, CancelResult
from durable.store.records import NewScheduledRun, SchedulableFlowRecord
from durable.store.registry import load_copy
from durable.text import clean
from durable.timesource import SYSTEM_TIME

MAX_BACKFILL = 10_000
"""The most ticks one backfill creates; a wider range is refused."""


# trigger ---------------------------------------------------------------------------------
@cli.command()
@click.argument("flow_name", metavar="FLOW")
@click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
              help="A parameter; VALUE is read as JSON when it parses. Repeatable.")  # fmt: skip
@click.option("--version", "version", type=click.IntRange(min=1),
              help="The registered version to run (default: the latest).")  # fmt: skip
@pass_settings
def trigger(
    settings: Settings, flow_name: str, params: tuple[str, ...], version: int | None
) -> None:
    """Ask for a run of a registered flow now; a worker runs it.

    Prints the run id at once. The run waits (status Scheduled) until a worker claims
    it: `durable worker`, or `durable worker --burst` to run it and exit.
    """
    parameters = parse_params(params)

    async def add(store: Store) -> control.Triggered:
        return await control.trigger(store, flow_name, parameters, version=version)

    triggered = with_store(settings, add, writable=True)
    run = triggered.run
    click.echo(f"Triggered run {run.id} of flow {flow_name!r} v{run.flow_version}")
    if not triggered.served:
        click.echo("No worker is running on this database; start one with: durable "
                   "worker (or durable worker --burst to run it and exit)", err=True)  # fmt: skip


# cancel ----------------------------------------------------------------------------------
@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--wait", "wait", type=click.FloatRange(min=0), default=None,
              metavar="SECONDS", help="Wait up to SECONDS for a running run to stop.")  # fmt: skip
@pass_settings
def cancel(settings: Settings, run_id: str, wait: float | None) -> None:
    """Cancel a run: one waiting for a worker, paused, or running.

    A run nothing is running is Cancelled at once. A running one stops at its next task
    boundary: the task runs already started finish, no other starts, and the run ends
    Cancelled.
    """

    async def request(store: Store) -> tuple[str, CancelResult]:
        return await control.cancel(store, run_id)

    full, result = with_store(settings, request, writable=True)
    if result.outcome is CancelOutcome.FINISHED:
        fail(f"Run {full} has already ended ({result.found}); nothing to cancel",
             EXIT_FAILED)  # fmt: skip
    if result.outcome is CancelOutcome.CANCELLED:
        click.echo(f"Cancelled run {clean(full)} (it was {clean(result.found)}; "
                   "nothing was running it)")  # fmt: skip
        return
    click.echo(f"Asked run {full} to stop: it ends Cancelled after the task runs "
               "it has started")  # fmt: skip
    if wait:
        state = with_store(settings, lambda store: _wait_for_end(store, full, wait))
        if state is None:
            fail(f"Run {full} has not stopped after {wait:g} s; it stops after its "
                 "running task runs finish", EXIT_FAILED)  # fmt: skip
        click.echo(f"Run {clean(full)}: {clean(state)}")


async def _wait_for_end(store: Store, run_id: str, seconds: float) -> str | None:
    deadline = SYSTEM_TIME.now() + timedelta(seconds=seconds)
    while True:
        record = await store.find_flow_run(run_id)
        if record is not None and record.state not in UNFINISHED:
            return record.state
        if SYSTEM_TIME.now() >= deadline:
            return None
        await SYSTEM_TIME.sleep_until(SYSTEM_TIME.now() + timedelta(seconds=0.1))


# backfill --------------------------------------------------------------------------------
@cli.command()
@click.argument("flow_name", metavar="FLOW")
@click.option("--start", required=True, metavar="WHEN",
              help="First time to cover, ISO 8601 (UTC unless it has an offset).")  # fmt: skip
@click.option("--end", required=True, metavar="WHEN",
              help="Last time to cover, ISO 8601; not in the future.")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="List the ticks; change nothing.")
@pass_settings
def backfill(
    settings: Settings, flow_name: str, start: str, end: str, dry_run: bool
) -> None:
    """Run a flow's schedule ticks between two past times.

    Every tick of the flow's schedule in [START, END] gets a run that a worker starts:
    ticks never recorded are created, ticks recorded as Skipped run after all, and
    ticks that ran or are waiting are left alone.
    """
    first, last, now = _when(start, "--start"), _when(end, "--end"), SYSTEM_TIME.now()
    if last < first:
        fail(f"--end {end} is before --start {start}")
    if last > now:
        fail(f"--end {end} is in the future; a backfill covers the past (the worker "
             "runs future ticks)")  # fmt: skip

    async def fill(store: Store) -> tuple[int, Any]:
        flow = await control.schedulable(store, flow_name)
        ticks = _ticks_between(flow, first, last, now)
        if dry_run:
            return len(ticks), [t.scheduled_for for t in ticks]
        return len(ticks), await store.backfill(ticks)

    count, outcome = with_store(settings, fill, writable=not dry_run)
    span = f"{first.to_iso8601_string()} to {last.to_iso8601_string()}"
    if dry_run:
        click.echo(f"Backfill of flow {flow_name!r} from {span}: {count} ticks "
                   "(dry run; nothing recorded)")  # fmt: skip
        for at in outcome:
            click.echo(f"  {views.when(at)}")
        return
    click.echo(
        f"Backfill of flow {flow_name!r} from {span}: {count} ticks; "
        f"{outcome.created} new, {outcome.rescheduled} skipped before and now "
        f"scheduled, {outcome.existing} already ran or waiting"
    )


def _when(text: str, option: str) -> pendulum.DateTime:
    try:
        parsed = pendulum.parse(text, tz="UTC")
    except ValueError as exc:  # pendulum's ParserError is one
        fail(f"{option} {text!r} is not a date or time; use ISO 8601, e.g. "
             f"2026-11-01 or 2026-11-01T06:00:00+01:00 ({exc})")  # fmt: skip
    if not isinstance(parsed, pendulum.DateTime):
        fail(f"{option} {text!r} is not a date or time; use ISO 8601, e.g. 2026-11-01")
    return parsed


def _ticks_between(
    flow: SchedulableFlowRecord, first: pendulum.DateTime, last: pendulum.DateTime,
    now: pendulum.DateTime, *, limit: int | None = MAX_BACKFILL,
) -> list[NewScheduledRun]:  # fmt: skip
    from durable.worker.ticks import plan_ticks

    schedule = load_copy(flow.schedule, flow.source_path)
    events: list[ClockEvent] = []
    for event in schedule.events(first - timedelta(microseconds=1)):
        if event.start_time > last:
            break
        if len(events) == limit:
            raise DurableError(
                f"More than {MAX_BACKFILL} ticks between --start and --end; backfill "
                "a narrower range at a time"
            )
        events.append(event)
    ticks = plan_ticks(flow, events, now=now, catchup="all", late_after=timedelta())
    return [replace(t, message="backfill") for t in ticks]


# schedule pause|resume|runs --------------------------------------------------------------
@cli.group()
def schedule() -> None:
    """Pause or resume a flow's schedule, and list its scheduled runs."""


@schedule.command("pause")
@click.argument("flow_name", metavar="FLOW")
@pass_settings
def schedule_pause(settings: Settings, flow_name: str) -> None:
    """Stop running a flow's schedule ticks; each is recorded as Skipped meanwhile."""

    async def pause(store: Store) -> int:
        return await control.pause_schedule(store, flow_name)

    skipped = with_store(settings, pause, writable=True)
    also = f"; {skipped} waiting runs skipped" if skipped else ""
    click.echo(f"Paused the schedule of flow {flow_name!r}{also}. Resume with: "
               f"durable schedule resume {flow_name}")  # fmt: skip


@schedule.command("resume")
@click.argument("flow_name", metavar="FLOW")
@pass_settings
def schedule_resume(settings: Settings, flow_name: str) -> None:
    """Run a paused flow's schedule again from now on (ticks missed stay Skipped)."""

    async def resume(store: Store) -> int:
        return await control.resume_schedule(store, flow_name)

    recorded = with_store(settings, resume, writable=True)
    also = f"; {recorded} ticks missed while paused recorded as Skipped" if (
        recorded
    ) else ""  # fmt: skip
    click.echo(f"Resumed the schedule of flow {flow_name!r}{also}")


@schedule.command("runs")
@click.argument("flow_name", metavar="FLOW", required=False)
@click.option("--status", help="Only runs with this status (Scheduled, Late, ...).")
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@pass_settings
def schedule_runs(
    settings: Settings, flow_name: str | None, status: str | None, limit: int
) -> None:
    """List scheduled runs (ticks, triggers, backfills), the newest last."""
    found = with_store(
        settings,
        lambda store: store.list_scheduled_runs(flow_name=flow_name, status=status),
    )
    views.print_scheduled_runs(found[-limit:])


# workers ---------------------------------------------------------------------------------
@cli.command()
@pass_settings
def workers(settings: Settings) -> None:
    """List the workers that have run on this database: alive, stopped or dead."""
    found = with_store(settings, lambda store: store.list_workers())
    with reported(settings):
        views.print_workers(
            [(w, _worker_status(w.pid, w.pid_started, w.stopped_at)) for w in found]
        )


def _worker_status(pid: int, token: str, stopped_at: float | None) -> str:
    if stopped_at is not None:
        return "stopped"
    alive = liveness(pid, token)
    return {Liveness.ALIVE: "running", Liveness.DEAD: "dead"}.get(alive, "unknown")


# the audit log ---------------------------------------------------------------------------
@cli.command()
@click.option("--limit", type=click.IntRange(min=1), default=30, show_default=True)
@pass_settings
def actions(settings: Settings, limit: int) -> None:
    """List the actions taken (trigger, cancel, restart, approve, pause...): who, when,
    on what, and how each ended; the newest last."""
    found = with_store(settings, lambda store: store.list_actions(limit))
    with reported(settings):
        views.print_actions(found[::-1])


# task concurrency limits -------------------------------------------------------------
@cli.group()
def limits() -> None:
    """Task concurrency limits by tag: at most N task runs with a tag run at once, across
    every flow run on the database."""


@limits.command("set")
@click.argument("tag")
@click.argument("slots", type=click.IntRange(min=1))
@pass_settings
def limits_set(settings: Settings, tag: str, slots: int) -> None:
    """Let at most SLOTS task runs tagged TAG run at once (flow runs that start from now
    on honour it)."""
    with_store(settings, lambda store: store.set_limit(tag, slots), writable=True)
    click.echo(f"At most {slots} task runs tagged {tag!r} run at once")


@limits.command("rm")
@click.argument("tag")
@pass_settings
def limits_rm(settings: Settings, tag: str) -> None:
    """Remove the limit of TAG."""
    with_store(settings, lambda store: store.set_limit(tag, None), writable=True)
    click.echo(f"Task runs tagged {tag!r} are not limited any more")


@limits.command("ls")
@pass_settings
def limits_ls(settings: Settings) -> None:
    """List the limits, each with the task runs holding its slots now."""
    found = with_store(settings, lambda store: store.list_limits())
    if not found:
        click.echo(
            "No concurrency limit is set; set one with: durable limits set TAG N"
        )
    for limit in found:
        held = ", ".join(limit.holders) or "none"
        click.echo(clean(f"{limit.tag}  {len(limit.holders)}/{limit.slots} in use  "
                         f"({held})"))  # fmt: skip
