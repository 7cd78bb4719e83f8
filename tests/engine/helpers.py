"""Helpers for engine tests: run a flow on a test database and read what it stored."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from durable import Flow
from durable.engine.flow_runner import run_flow_async
from durable.states import State
from durable.timesource import FakeTime


async def run(flow: Flow, db: Path, **options: Any) -> State:
    """Run or resume `flow` on `db` through the async engine."""
    return await run_flow_async(flow, db=db, **options)


async def run_on_fake_time(
    flow: Flow, db: Path, clock: FakeTime, **options: Any
) -> State:
    """Run `flow`, moving the fake clock to each sleeper's wake-up time as it waits."""
    outcome: list[State] = []

    async def drive() -> None:
        outcome.append(await run_flow_async(flow, db=db, time=clock, **options))

    async with anyio.create_task_group() as group:
        group.start_soon(drive)
        while not outcome:
            await anyio.lowlevel.checkpoint()
            await anyio.to_thread.run_sync(
                lambda: None
            )  # let the writer thread progress
            if clock._sleepers:
                clock.advance(min(w for w, _ in clock._sleepers) - clock.now())
    return outcome[0]


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Query the test database directly."""
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, args).fetchall()


def history(db: Path, run_id: str, slug: str) -> list[str]:
    """The state names a task run went through, in order."""
    return [
        name
        for (name,) in rows(
            db,
            "SELECT s.name FROM states s JOIN task_runs t ON t.id = s.task_run_id"
            " WHERE t.flow_run_id = ? AND t.task_slug = ? ORDER BY s.id",
            run_id,
            slug,
        )
    ]
