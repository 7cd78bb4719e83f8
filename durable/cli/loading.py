"""Loading flows from Python files and parameters from the command line."""

from __future__ import annotations

import json
import runpy
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from durable.cli.base import fail
from durable.core.flow import Flow


def load_flow(path: str, name: str | None, *, debug: bool = False) -> Flow:
    """Load a Python file and return its flow (the one named `name` if it has several)."""
    flows = load_flows(path, debug=debug)
    if name is not None:
        if name not in flows:
            fail(f"{path!r} has no flow {name!r}; it has: {', '.join(sorted(flows))}")
        return flows[name]
    if len(flows) > 1:
        fail(f"{path!r} has several flows ({', '.join(sorted(flows))}); pick one with "
             f"{path}:NAME")  # fmt: skip
    return next(iter(flows.values()))


def load_flows(path: str, *, debug: bool = False) -> dict[str, Flow]:
    """Load a Python file and return its module-level flows by name, in file order."""
    file = Path(path).expanduser().resolve()
    if not file.is_file():
        fail(f"No such flow file: {path!r}")
    sys.path.insert(0, str(file.parent))  # sibling imports work, as with `python FILE`
    try:
        namespace = runpy.run_path(str(file), run_name="__durable_flow_file__")
    except Exception as exc:  # the user's file failed to load, in any way
        if debug:
            raise
        fail(
            f"Loading {path!r} failed: {type(exc).__name__}: {exc} (--debug shows where)"
        )
    flows = {v.name: v for v in namespace.values() if isinstance(v, Flow)}
    if not flows:
        fail(f"{path!r} defines no Flow at module level")
    return flows


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """Turn `k=v` pairs into parameters; values are JSON when they parse, else strings."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            fail(f"--param takes NAME=VALUE, not {pair!r}")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params
