"""Kill -9 in the middle of a mapped task and while a task is paused: real processes.

After the crash, a resume (or an approval) must run exactly the unfinished children, never
a child whose Success was committed, and an approval must still release a paused task.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

FLOWS = Path(__file__).parent / "crashflows"


def durable(db: Path, side: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "DURABLE_DB"}
    env.update(CRASH_SIDE_FILE=str(side), DURABLE_LOG_LEVEL="WARNING")
    return subprocess.Popen(
        [sys.executable, "-m", "durable", "--db", str(db), *args],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def lines(side: Path) -> list[str]:
    return side.read_text().splitlines() if side.exists() else []


def kill_after(
    process: subprocess.Popen[bytes], side: Path, count: int,
    also: Callable[[], bool] = lambda: True,
) -> None:  # fmt: skip
    """SIGKILL the process once the side file has `count` lines (and `also()` holds)."""
    deadline = time.monotonic() + 30
    while len(lines(side)) < count or not also():
        assert process.poll() is None, "the run ended before the kill"
        assert time.monotonic() < deadline, "the run made no progress"
        threading.Event().wait(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if process.stderr is not None:
        process.stderr.close()


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


@pytest.mark.parametrize("kill_at", [30, 120])
def test_a_resumed_map_runs_exactly_the_unfinished_children(
    tmp_path: Path, kill_at: int
) -> None:
    db, side = tmp_path / "map.db", tmp_path / "side.txt"
    kill_after(durable(db, side, "run", str(FLOWS / "map200.py"), "--run-id", "m"),
               side, kill_at)  # fmt: skip
    committed = {
        int(index)
        for (index,) in query(
            db,
            "SELECT map_index FROM task_runs WHERE map_index >= 0"
            " AND state = 'Success'",
        )
    }
    before = Counter(int(line.split()[0]) for line in lines(side))
    resumed = durable(db, side, "resume", "m")
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err.decode()

    runs = Counter(int(line.split()[0]) for line in lines(side))
    after = runs - before
    assert set(after) == set(range(200)) - committed  # exactly the unfinished children
    assert all(after[i] == 1 for i in after)
    assert all(runs[i] == 1 for i in committed)  # a committed child never runs again
    assert all(runs[i] <= 2 for i in range(200))
    digests: dict[int, bytes] = dict(
        query(
            db,
            "SELECT t.map_index, r.value FROM results r JOIN task_runs t"
            " ON t.id = r.task_run_id WHERE t.task_slug = 'digest-1' AND t.map_index >= 0",
        )
    )
    assert {i: pickle.loads(v) for i, v in digests.items()} == {
        i: hashlib.sha256(f"item {i}".encode()).hexdigest() for i in range(200)
    }
    assert query(db, "SELECT state FROM flow_runs") == [("Success",)]
    assert query(db, "PRAGMA integrity_check") == [("ok",)]


def test_approve_releases_a_task_paused_before_a_crash(tmp_path: Path) -> None:
    db, side = tmp_path / "paused.db", tmp_path / "side.txt"

    def paused() -> bool:
        return bool(db.exists()) and query(
            db, "SELECT state FROM task_runs WHERE task_slug = 'approve_me-1'"
        ) == [("Paused",)]

    kill_after(durable(db, side, "run", str(FLOWS / "paused.py"), "--run-id", "p"),
               side, 5, also=paused)  # fmt: skip
    assert query(
        db, "SELECT state FROM task_runs WHERE task_slug = 'approve_me-1'"
    ) == [("Paused",)]
    approved = durable(db, side, "approve", "p", "approve_me-1")
    _, err = approved.communicate(timeout=120)
    assert approved.returncode == 0, err.decode()
    runs = Counter(lines(side))
    assert runs["approve_me-1"] == 1
    assert all(runs[f"work-{i}"] >= 1 for i in range(1, 22))
    assert query(db, "SELECT state FROM flow_runs") == [("Success",)]
    history = [name for (name,) in query(
        db, "SELECT s.name FROM states s JOIN task_runs t ON t.id = s.task_run_id"
        " WHERE t.task_slug = 'approve_me-1' ORDER BY s.id")]  # fmt: skip
    assert history == ["Paused", "Resume", "Running", "Success"]
