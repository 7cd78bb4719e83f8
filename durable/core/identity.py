"""How a flow is recognised when its file is loaded again: its file and its fingerprint.

A run records both, so that `durable resume` can find the flow and refuse one whose shape
changed since the run started. Each flow version also stores its `shape`, so that a
reader (the TUI) can draw the graph without loading the flow.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
from typing import TYPE_CHECKING

from durable.core.task import FunctionTask, Task

if TYPE_CHECKING:
    from durable.core.flow import Flow


def fingerprint(flow: Flow, source_module: str | None) -> str:
    """Return a sha256 of the flow's shape: tasks, edges and constant names.

    Loading the same file twice gives the same fingerprint; adding or removing a task,
    an edge or a constant argument changes it. Constant values do not count.
    `source_module` is the module that built the flow (see `defined_at`).
    """
    slugs = flow.slugs
    tasks = sorted(
        [slugs[t], _type_name(t, source_module), _function_name(t)] for t in flow.tasks
    )
    edges = sorted(
        [slugs[e.upstream], slugs[e.downstream], e.key or "", e.mapped, e.flattened]
        for e in flow.edges
    )
    constants = sorted(
        [slugs[t], sorted(values)] for t, values in flow.constants.items() if values
    )
    shape = json.dumps([tasks, edges, constants], separators=(",", ":"))
    return hashlib.sha256(shape.encode()).hexdigest()


def shape(flow: Flow) -> str:
    """Return the flow's graph as compact JSON: its tasks in dependency order and edges.

    `{"tasks": [[slug, name, mapped], ...], "edges": [[upstream, downstream, key,
    mapped, flattened], ...]}`, tasks as `flow.sorted_tasks()` orders them, edges by
    their downstream's then upstream's place in that order. A task is mapped when one
    of its inbound edges is. Readers must never need to unpickle anything to get it.
    """
    slugs = flow.slugs
    order = {task: index for index, task in enumerate(flow.sorted_tasks())}
    mapped = {edge.downstream for edge in flow.edges if edge.mapped}
    tasks = [[slugs[t], t.name, t in mapped] for t in order]
    edges = [
        [slugs[e.upstream], slugs[e.downstream], e.key, e.mapped, e.flattened]
        for e in sorted(
            flow.edges,
            key=lambda e: (order[e.downstream], order[e.upstream], e.key or ""),
        )
    ]
    return json.dumps({"tasks": tasks, "edges": edges}, separators=(",", ":"))


def parameters_of(flow: Flow) -> str:
    """Return the flow's parameters as JSON, for readers that must not unpickle it.

    `[{"name", "default", "required"}, ...]` sorted by name; a default is JSON text,
    or None when the parameter has none or its default is not JSON (then the run
    still gets it: a trigger that leaves the parameter out uses the default).
    """
    out = []
    for parameter in sorted(flow.parameters(), key=lambda p: p.name):
        try:
            default = None if parameter.required else json.dumps(parameter.default)
        except (TypeError, ValueError):
            default = None
        out.append(
            {"name": parameter.name, "default": default, "required": parameter.required}
        )
    return json.dumps(out, separators=(",", ":"))


def defined_at(flow: Flow) -> tuple[str | None, str | None]:
    """Return the file and module that called `Flow(...)`, skipping subclass inits.

    Call it from `Flow.__init__`: the frames above are the flow's own `__init__`s.
    """
    frame = inspect.currentframe()
    try:
        frame = frame.f_back if frame is not None else None
        while frame is not None and (
            frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is flow
        ):
            frame = frame.f_back
        if frame is None:
            return None, None
        filename = frame.f_code.co_filename
        path = os.path.abspath(filename) if os.path.isfile(filename) else None
        return path, frame.f_globals.get("__name__")
    finally:
        del frame


def _type_name(task: Task, source_module: str | None) -> str:
    # Classes from the flow's own file are named without their module, which is
    # "__main__" when run as a script and another name when loaded by the CLI.
    cls = type(task)
    if cls.__module__ == source_module:
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _function_name(task: Task) -> str:
    if isinstance(task, FunctionTask):
        return str(getattr(task.fn, "__qualname__", ""))
    return ""
