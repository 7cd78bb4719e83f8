"""`make demo`: run the ETL flow, kill it for real mid-way, resume it, show what happened.

The run uses the default database ($DURABLE_DB, else $DURABLE_HOME/durable.db, else
~/.durable/durable.db). The process is killed with SIGKILL while the `transform` task is
running: no exception, no cleanup, exactly like a crash or a power cut of the process.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import uuid
from contextlib import closing
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLOW_FILE = HERE / "demo_etl.py"
KILL_WHEN = "Task 'transform': Starting task run"


def durable(*args: str, **popen: object) -> subprocess.Popen[str]:
    """Start the `durable` command in a child process."""
    child: subprocess.Popen[str] = subprocess.Popen(
        [sys.executable, "-m", "durable", *args],
        text=True,
        **popen,  # type: ignore[call-overload]
    )
    return child


def banner(text: str) -> None:
    """Print a section title."""
    print(f"\n=== {text} ===", flush=True)


def database() -> str:
    """The database the demo runs on (the default one)."""
    return subprocess.run(
        [sys.executable, "-m", "durable", "db", "path"], text=True, capture_output=True,
        check=True,
    ).stdout.strip()  # fmt: skip


def wait_until_recorded_running(db: str, run_id: str, slug: str) -> None:
    """Wait (a few ms) until the task run's Running checkpoint is committed.

    The log line comes as the checkpoint is queued; killing before it commits would make
    the story less clear (the task would restart at attempt 1), not less correct.
    """
    tick = threading.Event()
    for _ in range(1000):
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            found = conn.execute(
                "SELECT state FROM task_runs WHERE flow_run_id = ? AND task_slug = ?",
                (run_id, slug),
            ).fetchone()
        if found is not None and found != ("Pending",):
            return
        tick.wait(0.005)


def run_and_kill(run_id: str) -> None:
    """Start the flow and kill -9 it once `transform` has started."""
    banner(f"1. Running flow 'etl' as run {run_id}; it will be killed mid-way")
    db = database()
    child = durable("run", str(FLOW_FILE), "--run-id", run_id, stderr=subprocess.PIPE)
    assert child.stderr is not None
    for line in child.stderr:
        print("   " + line, end="", flush=True)
        if KILL_WHEN in line:
            wait_until_recorded_running(db, run_id, "transform-1")
            os.kill(child.pid, signal.SIGKILL)
            break
    child.wait()
    banner(
        f"2. Killed the run with SIGKILL while 'transform' was running (exit {child.returncode})"
    )


def resume(run_id: str) -> int:
    """Resume the run in a new process."""
    banner(f"3. Resuming run {run_id} in a new process: durable resume {run_id}")
    child = durable("resume", run_id, stderr=subprocess.PIPE)
    assert child.stderr is not None
    for line in child.stderr:
        print("   " + line, end="", flush=True)
    return child.wait()


def summarize(run_id: str) -> None:
    """Say which tasks were skipped on resume and which ran, from the run's history."""
    db = database()
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT t.task_slug, t.state, t.attempts,"
            " (SELECT COUNT(*) FROM states s WHERE s.task_run_id = t.id"
            "  AND s.name = 'Running' AND s.timestamp >= r.resumed_at)"
            " FROM task_runs t, (SELECT MAX(timestamp) AS resumed_at FROM states"
            "  WHERE flow_run_id = ? AND task_run_id IS NULL AND name = 'Running') r"
            " WHERE t.flow_run_id = ? ORDER BY t.rowid",
            (run_id, run_id),
        ).fetchall()
    banner("4. What the resume did")
    skipped = [slug for slug, _, _, runs_after in rows if runs_after == 0]
    ran = [
        (slug, state, attempts) for slug, state, attempts, after in rows if after > 0
    ]
    print(f"   skipped (finished before the crash, results read from the database): "
          f"{', '.join(skipped) or 'none'}")  # fmt: skip
    for slug, state, attempts in ran:
        print(f"   ran after the resume: {slug} -> {state} (attempt {attempts})")
    banner("See it all")
    print(f"   durable show {run_id}     task runs, attempts, durations, state history")
    print(f"   durable logs {run_id}     every log line of the run")
    print("   durable runs              all runs in the database")
    print("   durable tui               browse it all live in the terminal (q quits)")
    print(f"   database: {db}")


def main() -> int:
    """Run the whole demo; exit 0 when the resumed run succeeded."""
    run_id = f"demo-{uuid.uuid4().hex[:6]}"
    run_and_kill(run_id)
    code = resume(run_id)
    summarize(run_id)
    return code


if __name__ == "__main__":
    sys.exit(main())
