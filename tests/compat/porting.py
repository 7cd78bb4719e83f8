"""Port Prefect 1 snippets to durable by rewriting their import lines, and run them."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

IMPORT_REWRITES = (
    ("from prefect.engine import signals", "from durable import signals"),
    ("from prefect.triggers import ", "from durable.triggers import "),
    (
        "from prefect.tasks.control_flow import ",
        "from durable.tasks.control_flow import ",
    ),
    (
        "from prefect.engine.cache_validators import ",
        "from durable.engine.cache_validators import ",
    ),
    ("from prefect import ", "from durable import "),
    ("import prefect", "import durable as prefect"),
)
"""Prefect 1 import line -> durable import line: the only change a snippet gets."""


def port(snippet: str) -> str:
    """Rewrite the snippet's `prefect` import lines to durable's; leave the rest alone."""
    lines = []
    for line in snippet.splitlines():
        for prefect, durable in IMPORT_REWRITES:
            if line == prefect or (prefect.endswith(" ") and line.startswith(prefect)):
                line = durable + line[len(prefect) :]
                break
        lines.append(line)
    return "\n".join(lines) + "\n"


def run_snippet(snippet: str) -> dict[str, Any]:
    """Port a snippet, run it in a fresh namespace, and return that namespace."""
    namespace: dict[str, Any] = {"__name__": "prefect_snippet"}
    code = compile(port(snippet), "<prefect snippet>", "exec")
    exec(code, namespace)  # noqa: S102 (the snippets are this file's own constants)
    return namespace


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Query the snippet's database directly."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()
