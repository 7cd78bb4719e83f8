"""The CLI reference (docs/cli.md), generated from the `durable` command itself.

Walks the click command tree (subgroups included, hidden commands and options left out)
and renders each command's usage line, help text, arguments and options as Markdown.
The output depends only on the commands: no terminal width, no environment. Regenerate
the page with `make docs` (`python -m durable.cli.reference docs/cli.md`);
tests/cli/test_reference.py fails when it is stale.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import click

import durable.cli
from durable.cli import cli

HEADER = """\
# CLI reference

<!-- Generated from the `durable` command by `make docs`
     (python -m durable.cli.reference docs/cli.md): do not edit by hand. -->

Every command takes `-h`/`--help`. The options of `durable` itself (`--db`, `--debug`) go
before the command: `durable --db x.db runs`. `RUN` may be any unique prefix of a run id.
"""


def walk(ctx: click.Context) -> Iterator[click.Context]:
    """Yield the context of this command and of every visible command below it."""
    yield ctx
    command = ctx.command
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        settings = sub.context_settings
        yield from walk(click.Context(sub, info_name=name, parent=ctx, **settings))


def root_context(group: click.Group = cli, name: str = "durable") -> click.Context:
    """Return the context of the top command, showing every option's default."""
    settings = {**group.context_settings, "show_default": True}
    return click.Context(group, info_name=name, **settings)


def visible_commands(group: click.Group = cli) -> list[str]:
    """Return the full path of every visible command (`durable schedule pause`)."""
    return [ctx.command_path for ctx in walk(root_context(group))][1:]


def render(group: click.Group = cli, name: str = "durable") -> str:
    """Return the whole reference page as Markdown."""
    contexts = list(walk(root_context(group, name)))
    parts = [HEADER + _exit_codes(), _index(contexts)]
    parts.extend(_section(ctx) for ctx in contexts)
    return "\n".join(parts)


def _exit_codes() -> str:
    """The paragraph of `durable.cli`'s docstring on errors and exit codes, if any."""
    paragraphs = inspect.cleandoc(durable.cli.__doc__ or "").split("\n\n")
    found = [" ".join(p.split()) for p in paragraphs if "Exit codes" in p]
    return f"{found[0]}\n" if found else ""


def _index(contexts: list[click.Context]) -> str:
    rows = ["| command | what it does |", "| --- | --- |"]
    for ctx in contexts[1:]:
        path = ctx.command_path
        summary = ctx.command.get_short_help_str(limit=200)
        rows.append(f"| [`{path}`](#{_anchor(path)}) | {_cell(summary)} |")
    return "\n".join(rows) + "\n"


def _section(ctx: click.Context) -> str:
    command = ctx.command
    depth = 1 + ctx.command_path.count(" ")
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    lines = [
        f"{'#' * min(depth + 1, 4)} {ctx.command_path}",
        "",
        "```text",
        usage,
        "```",
    ]
    text = _help_text(command)
    if text:
        lines += ["", text]
    arguments = [p for p in command.get_params(ctx) if isinstance(p, click.Argument)]
    if arguments:
        lines += ["", "Arguments:", ""]
        lines += [_argument(ctx, argument) for argument in arguments]
    help_option = command.get_help_option(ctx)
    options = [
        p
        for p in command.get_params(ctx)
        if isinstance(p, click.Option) and not p.hidden and p is not help_option
    ]
    if options:
        lines += ["", "Options:", ""]
        lines += [_option(ctx, option) for option in options]
    if isinstance(command, click.Group):
        names = [
            name
            for name in command.list_commands(ctx)
            if not getattr(command.get_command(ctx, name), "hidden", True)
        ]
        lines += ["", "Commands: " + ", ".join(f"`{name}`" for name in names) + "."]
    return "\n".join(lines) + "\n"


def _help_text(command: click.Command) -> str:
    """The command's help as click shows it (up to a form feed), paragraphs kept."""
    text = inspect.cleandoc(command.help or "").partition("\f")[0]
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n") if p.strip())


def _argument(ctx: click.Context, argument: click.Argument) -> str:
    required = "required" if argument.required else "optional"
    if argument.nargs != 1:
        required += ", repeatable"
    return f"- `{argument.human_readable_name}` ({required})"


def _option(ctx: click.Context, option: click.Option) -> str:
    record = option.get_help_record(ctx)
    spec = record[0] if record else "/".join(option.opts)
    text = " ".join((option.help or "").split())
    extra = option.get_help_extra(ctx)
    notes = []
    if "default" in extra and option.is_bool_flag and option.secondary_opts:
        chosen = option.opts if option.default else option.secondary_opts
        notes.append(f"default: `{chosen[0]}`")
    elif "default" in extra:
        notes.append(f"default: `{extra['default']}`")
    if "range" in extra:
        notes.append(f"range: `{extra['range']}`")
    if "required" in extra:
        notes.append("required")
    if option.multiple and "repeatable" not in text.lower():
        notes.append("repeatable")
    line = f"- `{spec}`"
    if text:
        line += f": {text}"
    if notes:
        line += f" ({'; '.join(notes)})"
    return line


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, spaces to dashes, punctuation gone."""
    kept = (c for c in heading.lower() if c.isalnum() or c in " -_")
    return "".join(kept).replace(" ", "-")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> None:
    """Print the reference, or write it to the file named as the only argument."""
    args = list(sys.argv[1:] if argv is None else argv)
    page = render()
    if args:
        Path(args[0]).write_text(page, encoding="utf-8")
    else:
        sys.stdout.write(page)


if __name__ == "__main__":
    main()
