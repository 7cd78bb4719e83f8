"""Kill -9 of the flow's process while Dask workers are busy, then resume elsewhere.

A real `durable run` drives a map on a LocalCluster it starts itself; once some bodies
have finished, its whole process group (flow process, scheduler, workers) is killed. A new
`durable resume` process (with a new cluster) finishes the run. The oracle for "ran" is the
side file the bodies append to, tagged with the process generation; the oracle for
"finished" is what SQLite had committed at the kill. A committed task never runs again.
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

import pytest

pytest.importorskip("distributed")

FLOW_FILE = Path(__file__).parent.parent / "crashflows" / "dask_map.py"
WIDTH = 24  # as in crashflows/dask_map.py
KILL_AFTER = 8
"""The kill is sent once this many bodies have left their trace."""
DEADLINE_SECONDS = 60.0


def command(db: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "durable", "--db", str(db), *args]


def environment(side_file: Path, phase: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DURABLE_DB"}
    env.update(CRASH_SIDE_FILE=str(side_file), CRASH_PHASE=phase)
    return env


def traces(side_file: Path) -> list[tuple[str, str]]:
    if not side_file.exists():
        return []
    return [(label, phase) for label, phase in map(str.split, side_file.read_text()
                                                   .splitlines())]  # fmt: skip


def committed(db: Path, run_id: str) -> set[str]:
    """The task runs whose Success SQLite had committed: `items`, `work-3`, ..."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT task_slug, map_index FROM task_runs"
            " WHERE flow_run_id = ? AND state = 'Success'",
            (run_id,),
        ).fetchall()
    names = {"items-1": "items", "total-1": "total"}
    return {
        f"work-{index}" if slug == "work-1" else names[slug] for slug, index in rows
    }


def test_a_resumed_dask_run_does_not_rerun_committed_tasks(tmp_path: Path) -> None:
    db, side_file, log = tmp_path / "crash.db", tmp_path / "side.txt", tmp_path / "log"

    def where() -> str:
        return log.read_text(errors="replace")[-4000:]

    with log.open("ab") as out:
        process = subprocess.Popen(
            command(db, "run", str(FLOW_FILE), "--run-id", "dask-crash"),
            env=environment(side_file, "killed"),
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group: the kill reaches it all
        )
    try:
        deadline, tick = time.monotonic() + DEADLINE_SECONDS, threading.Event()
        while sum(1 for label, _ in traces(side_file) if label != "items") < KILL_AFTER:
            assert process.poll() is None, f"the run ended before the kill:\n{where()}"
            assert time.monotonic() < deadline, f"no progress:\n{where()}"
            tick.wait(0.01)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, where()
    finished = committed(db, "dask-crash")
    assert "items" in finished, where()
    assert "total" not in finished, where()

    with log.open("ab") as out:
        resumed = subprocess.run(
            command(db, "resume", "dask-crash"),
            env=environment(side_file, "resumed"),
            stdout=out,
            stderr=out,
            timeout=DEADLINE_SECONDS,
            check=False,
            start_new_session=True,
        )
    assert resumed.returncode == 0, where()

    runs = Counter(traces(side_file))
    labels = {"items", *(f"work-{i}" for i in range(WIDTH))}
    assert {label for label, _ in runs} == labels, where()
    for label in labels:
        if label in finished:
            assert runs[label, "killed"] == 1, where()
            assert runs[label, "resumed"] == 0, (
                f"{label} had a committed Success but ran again:\n{where()}"
            )
        else:
            assert runs[label, "killed"] <= 1, where()
            assert runs[label, "resumed"] == 1, (
                f"{label} did not run exactly once on resume:\n{where()}"
            )
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        (state,) = conn.execute(
            "SELECT state FROM flow_runs WHERE id = 'dask-crash'"
        ).fetchone()
    assert state == "Success", where()
    assert len(finished - {"items"}) < WIDTH  # the kill did land mid-map
