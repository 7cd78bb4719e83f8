"""Choosing an executor: by flow, by run, by name on the command line; and its lifecycle."""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from durable import Flow, task
from durable.cli import cli
from durable.errors import ConfigurationError
from durable.executors import (
    ConcurrentExecutor,
    LocalDaskExecutor,
    LocalExecutor,
    ProcessExecutor,
    executor_from_spec,
)
from tests.engine.helpers import rows, run
from tests.executors.helpers import Gate, Tally, is_running
from tests.executors.test_process import worker_processes

pytestmark = pytest.mark.anyio


class TestExecutorFromSpec:
    @pytest.mark.parametrize(
        ("spec", "expected"),
        [
            ("local", "LocalExecutor()"),
            ("concurrent", "ConcurrentExecutor(max_workers=8)"),
            ("concurrent:3", "ConcurrentExecutor(max_workers=3)"),
            ("process:2", "ProcessExecutor(max_workers=2)"),
            ("dask", "DaskExecutor(cluster_class='LocalCluster')"),
            ("dask:tcp://10.0.0.5:8786", "DaskExecutor(address='tcp://10.0.0.5:8786')"),
        ],
    )
    def test_names_build_executors(self, spec: str, expected: str) -> None:
        assert repr(executor_from_spec(spec)) == expected

    def test_process_defaults_to_one_worker_per_cpu(self) -> None:
        executor = executor_from_spec("process")
        assert isinstance(executor, ProcessExecutor)
        assert executor.max_workers == (os.cpu_count() or 1)

    @pytest.mark.parametrize(
        "spec", ["threads", "process:0", "concurrent:x", "local:2"]
    )
    def test_unknown_names_are_refused_with_the_choices(self, spec: str) -> None:
        with pytest.raises(ConfigurationError, match=r"(process|positive integer)"):
            executor_from_spec(spec)


class TestLocalDaskExecutor:
    def test_is_the_concurrent_executor_under_prefects_name(self) -> None:
        executor = LocalDaskExecutor(num_workers=3)
        assert isinstance(executor, ConcurrentExecutor)
        assert executor.max_workers == 3
        assert LocalDaskExecutor(scheduler="synchronous").max_workers == 1

    def test_processes_point_to_the_process_executor(self) -> None:
        with pytest.raises(ConfigurationError, match="ProcessExecutor"):
            LocalDaskExecutor(scheduler="processes")


class Recording:
    """An executor that records its lifecycle around a LocalExecutor."""

    def __init__(self) -> None:
        self.max_workers = 1
        self.events: list[str] = []
        self._inner = LocalExecutor()

    @asynccontextmanager
    async def start(self) -> AsyncIterator[None]:
        self.events.append("start")
        try:
            yield
        finally:
            self.events.append("stop")

    async def call(self, fn: Callable[..., Any], kwargs: dict[str, Any], *,
                   is_async: bool, abandonable: bool) -> Any:  # fmt: skip
        self.events.append("call")
        return await self._inner.call(fn, kwargs, is_async=is_async,
                                      abandonable=abandonable)  # fmt: skip


class TestLifecycle:
    async def test_the_run_starts_and_stops_the_flows_executor(self, db: Path) -> None:
        @task
        def one() -> int:
            return 1

        executor = Recording()
        with Flow("lifecycle", executor=executor) as flow:
            one()
        await run(flow, db)
        assert executor.events == ["start", "call", "stop"]

    async def test_a_run_executor_wins_over_the_flows(self, db: Path) -> None:
        @task
        def one() -> int:
            return 1

        flows_own, this_run = Recording(), Recording()
        with Flow("lifecycle", executor=flows_own) as flow:
            one()
        await run(flow, db, executor=this_run)
        assert (flows_own.events, this_run.events) == ([], ["start", "call", "stop"])

    async def test_a_cancelled_run_stops_the_executor_and_kills_its_bodies(
        self, db: Path, tmp_path: Path
    ) -> None:
        tally, gate = Tally(tmp_path / "ran.txt"), Gate(tmp_path / "never")

        @task
        def hold() -> None:
            tally.record("hold")
            gate.wait(30)

        with Flow("cancelled") as flow:
            hold()
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: run(flow, db, executor=ProcessExecutor(1)))
            await anyio.to_thread.run_sync(tally.wait_for, "hold")
            group.cancel_scope.cancel()
        (pid,) = tally.pids()
        assert not is_running(pid)
        assert worker_processes() == []


def test_durable_run_takes_an_executor(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        logging.getLogger("durable"), "handlers", [logging.NullHandler()]
    )
    monkeypatch.setattr(sys, "path", list(sys.path))
    flow_file = tmp_path / "flow.py"
    flow_file.write_text(
        textwrap.dedent(f"""
        import os
        from durable import Flow, task

        @task
        def where():
            with open({str(tmp_path / "pid")!r}, "w") as out:
                out.write(str(os.getpid()))

        with Flow("where") as flow:
            where()
    """)
    )
    result = CliRunner().invoke(
        cli, ["--db", str(db), "run", str(flow_file), "--executor", "process:1"]
    )
    assert result.exit_code == 0, result.output
    assert int((tmp_path / "pid").read_text()) != os.getpid()
    assert rows(db, "SELECT state FROM flow_runs") == [("Success",)]


def test_durable_run_refuses_an_unknown_executor(tmp_path: Path, db: Path) -> None:
    flow_file = tmp_path / "flow.py"
    flow_file.write_text("from durable import Flow\nflow = Flow('empty')\n")
    result = CliRunner().invoke(
        cli, ["--db", str(db), "run", str(flow_file), "--executor", "threads"]
    )
    assert result.exit_code != 0
    assert "Unknown executor 'threads'" in result.output
