"""docs/cli.md is what `durable.cli.reference` generates from the `durable` command."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from durable.cli import cli, reference

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "cli.md"


def visible(group: click.Group, prefix: str) -> list[str]:
    """Every non-hidden command under `group`, walked without the generator's help."""
    ctx = click.Context(group, info_name=prefix)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is None or command.hidden:
            continue
        found.append(f"{prefix} {name}")
        if isinstance(command, click.Group):
            found += visible(command, f"{prefix} {name}")
    return found


def test_docs_cli_md_is_the_generators_output() -> None:
    assert PAGE.read_text(encoding="utf-8") == reference.render(), (
        "docs/cli.md is stale: run make docs"
    )


def test_every_visible_command_has_a_section_and_an_index_row() -> None:
    page = reference.render()
    commands = visible(cli, "durable")
    assert {"durable run", "durable db path", "durable limits set"} <= set(commands)
    assert reference.visible_commands() == commands
    for path in commands:
        assert f"# {path}\n" in page, path
        assert f"[`{path}`](#{path.replace(' ', '-')})" in page, path


def test_hidden_commands_and_options_are_left_out() -> None:
    page = reference.render()
    assert "worker-run" not in page
    assert "--poll" not in page  # `durable worker --poll` is hidden


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("durable run", "- `-p, --param NAME=VALUE`: A parameter;"),
        ("durable worker", "(default: `4`; range: `x>=1`)"),
        (
            "durable show",
            "Show every transition. (default: `--history`)",
        ),
        ("durable backfill", "- `--start WHEN`: First time to cover"),
        ("durable schedule runs", "- `FLOW` (optional)"),
    ],
)
def test_sections_show_usage_arguments_options_and_defaults(
    path: str, expected: str
) -> None:
    page = reference.render()
    section = page.split(f"# {path}\n", 1)[1].split("\n#", 1)[0]
    assert f"```text\n{path} [OPTIONS]" in section
    assert expected in section


def test_output_does_not_depend_on_the_terminal_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "40")
    narrow = reference.render()
    monkeypatch.setenv("COLUMNS", "300")
    assert reference.render() == narrow


def test_main_writes_the_page(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    reference.main([str(out)])
    assert out.read_text(encoding="utf-8") == reference.render()
