"""Commands for registered flows: register, flows."""

from __future__ import annotations

from pathlib import Path

import click
from pendulum import DateTime

from durable import views
from durable.cli.base import (
    Settings,
    cli,
    pass_settings,
    reported,
    with_store,
)
from durable.cli.loading import load_flow, load_flows
from durable.store import Store
from durable.store.records import (
    FlowSummaryRecord,
    RegisteredVersion,
)
from durable.store.registry import load_copy
from durable.timesource import SYSTEM_TIME


@cli.command()
@click.argument("path", metavar="FILE")
@click.option("--flow", "flow_name", metavar="NAME", help="Register only this flow.")
@pass_settings
def register(settings: Settings, path: str, flow_name: str | None) -> None:
    """Store each flow of a file (or the one named) as a new version, with its schedule
    and a copy a worker can run; an unchanged flow keeps its version."""
    chosen = (
        [load_flow(path, flow_name, debug=settings.debug)]
        if flow_name is not None
        else list(load_flows(path, debug=settings.debug).values())
    )
    from durable.store.packaging import package_flow  # schedules load only to register

    file, now = Path(path).expanduser().resolve(), SYSTEM_TIME.timestamp()
    with reported(settings):  # every flow is checked before any is stored
        packages = [package_flow(f, file=file, registered_at=now) for f in chosen]

    async def save(store: Store) -> list[RegisteredVersion]:
        return [await store.register_flow(package) for package in packages]

    for outcome in with_store(settings, save, writable=True):
        if outcome.is_new:
            click.echo(f"Registered flow {outcome.name!r} as v{outcome.version}")
        else:
            click.echo(f"Flow {outcome.name!r} unchanged, still v{outcome.version}")


@cli.command()
@pass_settings
def flows(settings: Settings) -> None:
    """List flows: latest version, registration, schedule, next start and latest run."""
    found = with_store(settings, lambda store: store.list_flows())
    now = SYSTEM_TIME.now()
    views.print_flows([_flow_line(flow, now) for flow in found])


def _flow_line(flow: FlowSummaryRecord, now: DateTime) -> views.FlowLine:
    """Load a flow's registered schedule and find its next start after `now`."""
    if flow.schedule is None:
        return views.FlowLine(flow, None)
    try:
        upcoming = load_copy(flow.schedule, flow.source_path).next(1, after=now)
    except Exception as exc:  # noqa: BLE001 (unpickling and filters run user code)
        return views.FlowLine(flow, None, f"{type(exc).__name__}: {exc}")
    return views.FlowLine(flow, upcoming[0].timestamp() if upcoming else None)
