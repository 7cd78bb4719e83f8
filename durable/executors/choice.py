"""Naming an executor in one word, as `durable run --executor` does."""

from __future__ import annotations

from durable.errors import ConfigurationError
from durable.executors.base import Executor
from durable.executors.dask import DaskExecutor
from durable.executors.local import ConcurrentExecutor, LocalExecutor
from durable.executors.processes import ProcessExecutor

SPECS = ("local", "concurrent[:N]", "process[:N]", "dask[:ADDRESS]")
"""The forms `executor_from_spec` accepts."""


def executor_from_spec(spec: str) -> Executor:
    """Return the executor `spec` names.

    `local`; `concurrent` or `concurrent:N` (N bodies at once); `process` or `process:N`
    (N worker processes, default one per CPU); `dask` (a temporary LocalCluster) or
    `dask:ADDRESS` (a running scheduler, such as `dask:tcp://10.0.0.5:8786`).
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind == "dask":
        return DaskExecutor(address=arg or None)
    if kind == "local" and not arg:
        return LocalExecutor()
    if kind in ("concurrent", "process"):
        workers = _count(spec, arg)
        if kind == "process":
            return ProcessExecutor(max_workers=workers)
        return ConcurrentExecutor() if workers is None else ConcurrentExecutor(workers)
    raise ConfigurationError(
        f"Unknown executor {spec!r}; use one of: {', '.join(SPECS)}"
    )


def _count(spec: str, arg: str) -> int | None:
    if not arg:
        return None
    if not arg.isdigit() or int(arg) < 1:
        raise ConfigurationError(
            f"Executor {spec!r}: the number of workers must be a positive integer, "
            f"not {arg!r}"
        )
    return int(arg)
