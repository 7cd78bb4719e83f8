"""Commands that read the database: runs, show, logs, db path."""

from __future__ import annotations

import click

from durable import views
from durable.cli.base import (
    Settings,
    cli,
    pass_settings,
    with_store,
)
from durable.store import Store, resolve_db_path
from durable.store.records import (
    LogRecord,
)


@cli.command()
@click.option("--flow", "flow_name", metavar="NAME", help="Only runs of this flow.")
@click.option("--state", metavar="STATE", help="Only runs in this state (e.g. Failed).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@pass_settings
def runs(
    settings: Settings, flow_name: str | None, state: str | None, limit: int
) -> None:
    """List flow runs, newest first."""
    found = with_store(
        settings,
        lambda store: store.list_flow_runs(
            flow_name=flow_name, state=state, limit=limit
        ),
    )
    views.print_runs(found)


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--history/--no-history", default=True, help="Show every transition.")
@pass_settings
def show(settings: Settings, run_id: str, history: bool) -> None:
    """Show a run: its task runs (states, attempts, durations) and state history."""

    async def read(store: Store) -> views.RunDetail:
        record = await store.get_flow_run(run_id)
        return views.RunDetail(
            record,
            await store.read_parameters(record.id),  # never unpickled
            await store.list_task_runs(record.id),
            await store.list_states(record.id) if history else [],
        )

    views.print_run(with_store(settings, read))


@cli.command()
@click.argument("run_id", metavar="RUN")
@pass_settings
def logs(settings: Settings, run_id: str) -> None:
    """Print a run's log lines."""

    async def read(store: Store) -> tuple[list[LogRecord], dict[str, str]]:
        record = await store.get_flow_run(run_id)
        names = {t.id: t.task_slug for t in await store.list_task_runs(record.id)}
        return await store.list_logs(record.id), names

    views.print_logs(*with_store(settings, read))


@cli.group()
def db() -> None:
    """The database."""


@db.command("path")
@pass_settings
def db_path(settings: Settings) -> None:
    """Print the database file in use."""
    click.echo(str(resolve_db_path(settings.db)))
