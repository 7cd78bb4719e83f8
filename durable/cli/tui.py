"""`durable tui`: the terminal UI (Textual loads only for this command)."""

from __future__ import annotations

import click

from durable.cli.base import Settings, cli, pass_settings, reported
from durable.store import resolve_db_path


@cli.command()
@click.option(
    "--read-only", is_flag=True, help="Hide every action that changes something."
)
@click.option("--refresh", type=click.FloatRange(min=0.2), default=2.0, show_default=True,
              metavar="SECONDS", help="How often the active screen polls.")  # fmt: skip
@pass_settings
def tui(settings: Settings, read_only: bool, refresh: float) -> None:
    """Browse flows, runs, task runs, logs, schedules and workers; trigger, cancel and
    pause from the keyboard (? lists the keys)."""
    from tui.app import DurableApp

    with reported(settings):
        app = DurableApp(resolve_db_path(settings.db), read_only=read_only,
                         refresh=refresh)  # fmt: skip
    app.run()
