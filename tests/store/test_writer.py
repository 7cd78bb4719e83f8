"""The checkpoint writer: ordered group commits, and the bounds on what is in flight."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from durable.store.connection import connect_writer, ensure_file, migrate
from durable.store.writer import CheckpointWriter

pytestmark = pytest.mark.anyio


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def open_writer(db: Path, clock: ManualClock, **options: float) -> CheckpointWriter:
    ensure_file(db)
    conn = connect_writer(db)
    migrate(conn, db)
    conn.execute("CREATE TABLE IF NOT EXISTS t (x INTEGER)")
    return CheckpointWriter(conn, clock=clock, **options)  # type: ignore[arg-type]


def insert(x: int) -> object:
    return lambda conn: conn.execute("INSERT INTO t VALUES (?)", (x,))


def held(gate: threading.Event) -> object:
    """An operation that keeps the writer thread busy until the gate opens."""
    return lambda conn: gate.wait(10)


async def throttle_finishes_before_gate(
    writer: CheckpointWriter, gate: threading.Event
) -> bool:
    """Run throttle(); report whether it returned while the writer was still held."""
    done = anyio.Event()

    async def call() -> None:
        await writer.throttle()
        done.set()

    async with anyio.create_task_group() as group:
        group.start_soon(call)
        await anyio.wait_all_tasks_blocked()
        returned_early = done.is_set()
        gate.set()
    return returned_early


class TestThrottle:
    async def test_young_writes_do_not_make_the_engine_wait(self, db: Path) -> None:
        clock = ManualClock()
        writer = open_writer(db, clock, max_lag=0.05)
        gate = threading.Event()
        writer.submit(held(gate))  # type: ignore[arg-type]
        clock.now = 0.01
        assert await throttle_finishes_before_gate(writer, gate)
        writer.close()

    async def test_writes_older_than_max_lag_make_the_engine_wait(
        self, db: Path
    ) -> None:
        clock = ManualClock()
        writer = open_writer(db, clock, max_lag=0.05)
        gate = threading.Event()
        writer.submit(held(gate))  # type: ignore[arg-type]
        clock.now = 0.06
        assert not await throttle_finishes_before_gate(writer, gate)
        assert writer.pending == 0
        writer.close()

    async def test_too_many_writes_in_flight_make_the_engine_wait(
        self, db: Path
    ) -> None:
        clock = ManualClock()
        writer = open_writer(db, clock, max_pending=4, max_lag=1e9)
        gate = threading.Event()
        writer.submit(held(gate))  # type: ignore[arg-type]
        for x in range(5):
            writer.submit(insert(x))  # type: ignore[arg-type]
        assert not await throttle_finishes_before_gate(writer, gate)
        assert writer.pending <= 2
        writer.close()


def test_batches_commit_in_submission_order(db: Path) -> None:
    writer = open_writer(db, ManualClock())
    for x in range(1000):
        writer.submit(insert(x))  # type: ignore[arg-type]
    writer.close()
    with sqlite3.connect(db) as conn:
        rows = [x for (x,) in conn.execute("SELECT x FROM t ORDER BY rowid")]
    assert rows == list(range(1000))


def test_commit_each_gives_every_operation_a_transaction_of_its_own(db: Path) -> None:
    # The bench-only knob that measures group commit (bench/group_commit.py).
    writer = open_writer(db, ManualClock())
    writer.commit_each = True
    gate, events = threading.Event(), list[str]()

    def write(x: int) -> object:
        def operation(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (?)", (x,))
            events.append(f"write {x}")
            writer.after_commit(lambda: events.append(f"commit {x}"))

        return operation

    writer.submit(held(gate))  # type: ignore[arg-type]
    for x in range(3):  # all three wait in the queue together
        writer.submit(write(x))  # type: ignore[arg-type]
    gate.set()
    writer.close()
    assert events == [
        "write 0", "commit 0", "write 1", "commit 1", "write 2", "commit 2"
    ]  # fmt: skip
    with sqlite3.connect(db) as conn:
        assert [x for (x,) in conn.execute("SELECT x FROM t ORDER BY rowid")] == [
            0, 1, 2
        ]  # fmt: skip
