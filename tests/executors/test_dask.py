"""DaskExecutor: a cluster per run or a running scheduler, worker deaths, installation."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from durable import Flow, task, triggers
from durable.errors import ConfigurationError
from durable.executors import DaskExecutor, WorkerCrashedError
from durable.executors.dask import worker_resources
from tests.engine.helpers import run

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.anyio


@task
def inc(x: int) -> int:
    return x + 1


async def test_a_cluster_is_started_for_the_run_and_closed_after(db: Path) -> None:
    started: list[Any] = []

    def cluster_class(**kwargs: Any) -> Any:
        started.append(distributed.LocalCluster(**kwargs))
        return started[-1]

    executor = DaskExecutor(
        cluster_class=cluster_class,
        cluster_kwargs={"n_workers": 1, "processes": False, "dashboard_address": None},
    )
    with Flow("own-cluster") as flow:
        last = inc(inc(1))
    state = await run(flow, db, executor=executor)
    assert state.result[last].result == 3
    (cluster,) = started
    assert cluster.status.name == "closed"
    assert executor.max_workers == 8  # four per worker thread, at least 8


async def test_a_worker_that_dies_fails_that_task(db: Path) -> None:
    @task
    def die() -> None:
        import os

        os._exit(7)

    @task(trigger=triggers.always_run)
    def after(x: object) -> str:
        return "ran on a new worker"

    with Flow("worker-death") as flow:
        dead = die()
        fine = after(dead)
    config = {"distributed.scheduler.allowed-failures": 0}
    with dask.config.set(config):
        executor = DaskExecutor(
            cluster_kwargs={"n_workers": 1, "processes": True,
                            "dashboard_address": None, "memory_limit": None},
        )  # fmt: skip
        state = await run(flow, db, executor=executor)
    error = state.result[dead].result
    assert isinstance(error, WorkerCrashedError)
    assert "'die'" in str(error)
    assert state.result[fine].result == "ran on a new worker"


def test_a_missing_distributed_is_named_with_its_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ConfigurationError, match=r"pip install 'durable\[dask\]'"):
        DaskExecutor()


def test_an_address_and_a_cluster_class_are_exclusive() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        DaskExecutor("tcp://127.0.0.1:8786", cluster_class="x.Cluster")


@pytest.mark.parametrize(
    ("tags", "resources"),
    [
        ({"db"}, None),
        ({"dask-resource:GPU=1", "other"}, {"GPU": 1.0}),
        (
            ["dask-resource:MEMORY=2e9", "dask-resource:TOKEN"],
            {"MEMORY": 2e9, "TOKEN": 1.0},
        ),
    ],
)
def test_resource_tags_become_worker_resources(
    tags: Any, resources: dict[str, float] | None
) -> None:
    assert worker_resources(tags) == resources
