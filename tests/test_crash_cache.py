"""Kill -9 acceptance for caching: a cached value written before a crash is reused after.

A real `durable run` finishes a `cache_for` task, then hangs in a later task and is killed
with SIGKILL once SQLite has the cache entry. A second, new run of the flow must take the
value from the cache: the side file the bodies append to shows the cached body ran once.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

FLOW_FILE = Path(__file__).parent / "crashflows" / "cached.py"
DEADLINE_SECONDS = 30.0


def durable(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "durable", "--db", str(db), *args]


def environment(side_file: Path, *, hang: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DURABLE_DB", "CRASH_HANG")}
    env["CRASH_SIDE_FILE"] = str(side_file)
    if hang:
        env["CRASH_HANG"] = "1"
    return env


def executions(side_file: Path) -> list[tuple[str, int]]:
    if not side_file.exists():
        return []
    return [
        (slug, int(pid))
        for slug, pid in (line.split() for line in side_file.read_text().splitlines())
    ]


def committed_cache_entries(db: Path) -> int:
    if not db.exists():
        return 0
    uri = f"file:{db}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as conn:
            (count,) = conn.execute("SELECT count(*) FROM cache").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(count)


def run_and_kill(db: Path, side_file: Path, log: Path) -> int:
    """Start a run, wait until it hangs with its cache entry committed, kill -9 it."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            durable(db, "run", str(FLOW_FILE), "--run-id", "first"),
            env=environment(side_file, hang=True),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    deadline = time.monotonic() + DEADLINE_SECONDS
    tick = threading.Event()
    try:
        while not (
            any(slug.startswith("hang") for slug, _ in executions(side_file))
            and committed_cache_entries(db) == 1
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            tick.wait(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, log.read_text()
    return process.pid


def test_a_cached_value_written_before_a_crash_is_reused_after_it(
    tmp_path: Path,
) -> None:
    db, side_file, log = tmp_path / "crash.db", tmp_path / "side.txt", tmp_path / "log"
    killed_pid = run_and_kill(db, side_file, log)
    with log.open("ab") as out:
        second = subprocess.run(
            durable(db, "run", str(FLOW_FILE), "--run-id", "second"),
            env=environment(side_file, hang=False),
            stdout=out,
            stderr=out,
            timeout=60,
            check=False,
        )
    assert second.returncode == 0, log.read_text()
    ran = Counter(slug.split("-")[0] for slug, _ in executions(side_file))
    assert ran == {"expensive": 1, "hang": 2}
    assert [pid for slug, pid in executions(side_file) if slug.startswith("exp")] == [
        killed_pid
    ]
    with closing(sqlite3.connect(db)) as conn:
        states = dict(
            conn.execute(
                "SELECT task_name, state FROM task_runs WHERE flow_run_id = 'second'"
            ).fetchall()
        )
        (first_state,) = conn.execute(
            "SELECT state FROM flow_runs WHERE id = 'first'"
        ).fetchone()
    assert states == {"expensive": "Cached", "hang": "Success"}
    assert first_state == "Running"  # the killed run stays resumable
