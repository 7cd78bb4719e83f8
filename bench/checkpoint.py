"""Checkpoint benchmark: durable's task throughput, import time and resume time.

`make bench` runs it. Every figure is measured in this one run on temporary databases,
beside the physical floor (a bare sqlite3 commit loop) and the targets of issue 2. The
bench reports PASS/MISS; it never fails on a miss.
"""

from __future__ import annotations

import os
import platform
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from report import filesystem_of, print_table, verdict  # bench/report.py

from durable import Flow, Task, task

FLOOR_COMMITS = 2_000
CHAIN_LENGTHS = (1_000, 10_000)
DURABILITIES = ("full", "normal")
RESUME_LENGTH = 10_000
IMPORT_REPEATS = 5

TARGET_TASKS_PER_SECOND = {"full": 1_500.0, "normal": 3_000.0}
TARGET_IMPORT_SECONDS = 0.2
TARGET_RESUME_SECONDS = 0.5

KILL_ENV = "DURABLE_BENCH_KILL"
"""When set, the resume chain's last task kills its own process (SIGKILL)."""

_last_started: list[float] = []
"""perf_counter() readings taken as the resume chain's last task body starts."""


@task
def inc(x: int) -> int:
    return x + 1


@task
def hop(x: int) -> int:
    # The resume chain has its own task, so its slugs do not depend on what else ran.
    return x + 1


@task
def last(x: int) -> int:
    """End the resume chain: die the first time, record the moment it is reached after."""
    if os.environ.get(KILL_ENV):
        os.kill(os.getpid(), signal.SIGKILL)
    _last_started.append(time.perf_counter())
    return x + 1


def build_chain(length: int, step: Task = inc, end: Task = inc) -> tuple[Flow, Task]:
    """Return a flow of `length` tasks, each adding one to its upstream, and its tail."""
    with Flow(f"bench-chain-{length}") as flow:
        tail = step(0)
        for _ in range(length - 2):
            tail = step(tail)
        tail = end(tail)
    return flow, tail


def run_chain(length: int, durability: str, db: Path) -> float:
    """Run a fresh chain to the end and return its wall time in seconds."""
    flow, tail = build_chain(length)
    start = time.perf_counter()
    state = flow.run(run_id=f"chain-{length}", db=db, durability=durability)
    elapsed = time.perf_counter() - start
    if not state.is_successful() or state.result[tail].result != length:
        raise RuntimeError(f"the {length}-task chain did not succeed: {state!r}")
    return elapsed


def warm_up(db: Path) -> None:
    """Pay one-time costs (lazy imports, first thread hop) outside the timings."""
    run_chain(10, "full", db)


# --- measurements ----------------------------------------------------------------------


def measure_floor(directory: Path, synchronous: str) -> float:
    """Return µs per `BEGIN IMMEDIATE; INSERT; COMMIT` on a bare WAL connection."""
    conn = sqlite3.connect(directory / f"floor-{synchronous}.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("CREATE TABLE checkpoints (id INTEGER PRIMARY KEY, value BLOB)")
        payload = b"x" * 64
        start = time.perf_counter()
        for i in range(FLOOR_COMMITS):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO checkpoints VALUES (?, ?)", (i, payload))
            conn.execute("COMMIT")
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return elapsed / FLOOR_COMMITS * 1e6


def run_child(
    directory: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run this file in a child process (see `child_main`), console output discarded."""
    return subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        check=False,
        cwd=directory,
    )


def measure_logged_chain(directory: Path, length: int) -> float:
    """Time a FULL chain with default INFO console logging (to /dev/null), in a child."""
    db = directory / f"logged-{length}.db"
    child = run_child(
        directory, "chain", str(length), str(db), env={"DURABLE_LOG_LEVEL": "INFO"}
    )
    if child.returncode != 0:
        raise RuntimeError(f"the logged chain child failed ({child.returncode})")
    return float(child.stdout.split()[-1])


def time_python(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - start


def measure_import() -> tuple[float, bool]:
    """Return `import durable`'s cost over a bare interpreter, and whether it loads textual."""
    bare, loaded = [], []
    for _ in range(IMPORT_REPEATS):
        bare.append(time_python("pass"))
        loaded.append(time_python("import durable"))
    probe = subprocess.run(
        [sys.executable, "-c", "import sys, durable; print('textual' in sys.modules)"],
        check=True,
        capture_output=True,
        text=True,
    )
    return min(loaded) - min(bare), probe.stdout.strip() == "True"


@dataclass(frozen=True)
class Resume:
    """What resuming the killed 10,000-task run cost."""

    committed: int
    """Task runs whose Success was durable when the first process died."""
    to_last_task: float
    """Seconds from calling flow.run to the start of the last task's body."""
    total: float
    """Seconds for the whole flow.run call."""


def measure_resume(directory: Path) -> Resume:
    """Kill a 10,000-task run at its last task, then resume it here and time it."""
    db, run_id = directory / "resume.db", "resume"
    child = run_child(
        directory, "crash", str(db), run_id,
        env={KILL_ENV: "1", "DURABLE_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    if child.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the crash child was not killed ({child.returncode})")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        (committed,) = conn.execute(
            "SELECT count(*) FROM task_runs WHERE flow_run_id = ? AND state = 'Success'",
            (run_id,),
        ).fetchone()
    finally:
        conn.close()
    flow, tail = build_chain(RESUME_LENGTH, step=hop, end=last)
    _last_started.clear()
    start = time.perf_counter()
    state = flow.run(run_id=run_id, db=db)
    total = time.perf_counter() - start
    if not state.is_successful() or state.result[tail].result != RESUME_LENGTH:
        raise RuntimeError(f"the resumed run did not succeed: {state!r}")
    if len(_last_started) != 1:
        raise RuntimeError(f"the last task ran {len(_last_started)} times on resume")
    return Resume(committed, _last_started[0] - start, total)


def child_main(args: Sequence[str]) -> None:
    """Work done in a child process: `chain LENGTH DB` or `crash DB RUN_ID`."""
    if args[0] == "chain":
        warm_up(Path(args[2]).with_suffix(".warm-up.db"))
        print(run_chain(int(args[1]), "full", Path(args[2])))
    elif args[0] == "crash":
        flow, _ = build_chain(RESUME_LENGTH, step=hop, end=last)
        flow.run(run_id=args[2], db=Path(args[1]))
        raise RuntimeError("the last task should have killed this process")


# --- report ----------------------------------------------------------------------------


def report_chains(
    floors: dict[str, float], chains: dict[tuple[int, str], float], logged: float
) -> None:
    """Print the chain timings beside the floor and the throughput targets."""
    rows: list[list[str]] = []
    measured = [
        (length, mode, "WARNING", secs) for (length, mode), secs in chains.items()
    ]
    measured.append((CHAIN_LENGTHS[0], "full", "INFO", logged))
    for length, mode, level, seconds in measured:
        per_second = length / seconds
        micros = seconds / length * 1e6
        target = TARGET_TASKS_PER_SECOND[mode]
        rows.append([
            f"{length:,}", mode, level, f"{seconds:.2f}", f"{per_second:,.0f}",
            f"{micros:,.0f}", f"{micros / floors[mode]:.1f}x",
            f">= {target:,.0f}/s", verdict(per_second >= target),
        ])  # fmt: skip
    print_table(
        "Sequential chain of trivial tasks, checkpoints on (INFO: console to /dev/null)",
        ["tasks", "durability", "log level", "seconds", "tasks/s", "µs/task",
         "vs floor", "target", ""],
        rows,
        align="rllrrrrrl",
    )  # fmt: skip
    print(
        "  vs floor: µs/task over the floor's µs/commit of the same synchronous mode; "
        "below 1x\n  is possible because checkpoints are group-committed "
        "(one fsync per batch of tasks)"
    )


def main() -> None:
    os.environ["DURABLE_LOG_LEVEL"] = "WARNING"  # console logging must not dominate
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as name:
        directory = Path(name)
        print(
            f"durable checkpoint benchmark: Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}, {os.cpu_count()} CPUs, "
            f"temp files on {filesystem_of(directory)}"
        )
        floors = {mode: measure_floor(directory, mode.upper()) for mode in DURABILITIES}
        print_table(
            f"Physical floor: bare sqlite3, WAL, BEGIN IMMEDIATE; INSERT; COMMIT "
            f"x {FLOOR_COMMITS:,}",
            ["synchronous", "µs/commit", "commits/s"],
            [[mode.upper(), f"{us:,.0f}", f"{1e6 / us:,.0f}"] for mode, us in floors.items()],
        )  # fmt: skip

        warm_up(directory / "warm-up.db")
        chains = {
            (length, mode): run_chain(
                length, mode, directory / f"chain-{length}-{mode}.db"
            )
            for length in CHAIN_LENGTHS
            for mode in DURABILITIES
        }
        logged = measure_logged_chain(directory, CHAIN_LENGTHS[0])
        report_chains(floors, chains, logged)

        import_seconds, textual = measure_import()
        print_table(
            f"import durable (min of {IMPORT_REPEATS} fresh interpreters, minus `pass`)",
            ["measure", "result", "target", ""],
            [
                ["import time", f"{import_seconds:.3f} s", f"< {TARGET_IMPORT_SECONDS} s",
                 verdict(import_seconds < TARGET_IMPORT_SECONDS)],
                ["textual in sys.modules", "yes" if textual else "no", "no",
                 verdict(not textual)],
            ],
        )  # fmt: skip

        resume = measure_resume(directory)
        print_table(
            f"Resume of a {RESUME_LENGTH:,}-task run killed (SIGKILL) in its last task",
            ["measure", "result", "target", ""],
            [
                ["Success committed before the kill",
                 f"{resume.committed:,} / {RESUME_LENGTH:,}", "", ""],
                ["flow.run -> last task body starts", f"{resume.to_last_task:.3f} s",
                 f"< {TARGET_RESUME_SECONDS} s",
                 verdict(resume.to_last_task < TARGET_RESUME_SECONDS)],
                ["whole resume", f"{resume.total:.3f} s", "", ""],
            ],
        )  # fmt: skip
    print(
        f"\nbench took {time.perf_counter() - began:.0f} s; targets are informational"
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2:])
    else:
        main()
