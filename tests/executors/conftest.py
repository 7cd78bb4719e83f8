"""Fixtures for executor tests: one executor per kind, and one Dask cluster per module.

The Dask cluster is a `LocalCluster` of two single-threaded worker processes, started
only by modules that use it and shared by their tests; each run connects its own client
to it (`DaskExecutor(address=...)`), as a run against a remote cluster would.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from durable.executors import (
    ConcurrentExecutor,
    DaskExecutor,
    Executor,
    LocalExecutor,
    ProcessExecutor,
)

KINDS = ("local", "concurrent", "process", "dask")


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """The scheduler address of a LocalCluster shared by the module's tests."""
    distributed = pytest.importorskip("distributed")
    cluster: Any = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        memory_limit=None,
    )
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def make_executor(kind: str, request: pytest.FixtureRequest) -> Executor:
    """A fresh executor of `kind` (a Dask one connects to the module's cluster)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "concurrent":
        return ConcurrentExecutor(max_workers=4)
    if kind == "process":
        return ProcessExecutor(max_workers=2)
    return DaskExecutor(address=request.getfixturevalue("dask_address"))


@pytest.fixture(params=KINDS)
def executor(request: pytest.FixtureRequest) -> Executor:
    """Each executor kind in turn."""
    return make_executor(request.param, request)
