"""`durable doctor`: check a database and say what to do about what is wrong."""

from __future__ import annotations

import sys

import click

from durable.cli.base import Settings, cli, pass_settings
from durable.store import resolve_db_path
from durable.text import clean

MARKS = {"ok": "ok     ", "warning": "WARNING", "problem": "PROBLEM"}


@cli.command()
@click.option("--remove-orphans", is_flag=True,
              help="Delete result files that no committed result names.")  # fmt: skip
@pass_settings
def doctor(settings: Settings, remove_orphans: bool) -> None:
    """Check the database: SQLite version, schema, integrity, WAL size, runs whose
    process is gone, orphaned result files. Changes nothing unless asked. Exit 0 healthy
    (warnings allowed), 1 a problem found, 3 the database is unusable."""
    from durable.doctor import examine, exit_code

    report = examine(resolve_db_path(settings.db), remove_orphans=remove_orphans)
    click.echo(f"Database {clean(report.path)}")
    for finding in report.findings:  # messages may quote the database: shown as text
        click.echo(clean(
            f"  {MARKS[finding.level.value]}  {finding.check:<9} {finding.message}"
        ))  # fmt: skip
        if finding.advice:
            click.echo(clean(f"  {'':7}  {'':<9} → {finding.advice}"))
    sys.exit(exit_code(report))
