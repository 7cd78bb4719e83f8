"""Kill -9 acceptance: a real `durable run` is killed mid-chain, then `durable resume`d.

The oracle for "ran" is the side file the task bodies append to (it survives the kill);
the oracle for "finished" is what SQLite had committed when the process died. Every task
with a committed Success must never run again; every other task may have run once before
the kill (checkpoints are written behind the task loop) and runs exactly once on resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

FLOW_FILE = Path(__file__).parent / "crashflows" / "chain.py"
LENGTH = 50
FIRST_INPUT = "crash-chain"  # as in crashflows/chain.py
SLUGS = tuple(f"step-{index}" for index in range(1, LENGTH + 1))
START_DEADLINE_SECONDS = 30.0
FAST_SEEDS = (1, 2, 3)
SLOW_SEEDS = tuple(range(100, 120))


def expected_results() -> dict[str, str]:
    """Compute every task's correct value independently of the flow file."""
    values: dict[str, str] = {}
    value = FIRST_INPUT
    for index, slug in enumerate(SLUGS, start=1):
        value = hashlib.sha256(f"{value} {index}".encode()).hexdigest()
        values[slug] = value
    return values


@dataclass(frozen=True)
class Scenario:
    """One crash: where the kill lands and where its files live."""

    seed: int
    kill_after: int
    """The kill is sent once the side file has this many lines."""
    durability: str
    db: Path
    side_file: Path
    log_file: Path

    @property
    def run_id(self) -> str:
        return f"crash-{self.seed}"

    def describe(self) -> str:
        """Name the scenario in an assertion message, with the durable output so far."""
        log = (
            self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        )
        return (
            f"seed={self.seed} kill_after={self.kill_after} "
            f"durability={self.durability} db={self.db}\n--- durable output ---\n"
            f"{log[-4000:]}"
        )


def make_scenario(tmp_path: Path, seed: int, durability: str = "full") -> Scenario:
    """Draw the kill point from the seed alone, so a failing seed can be replayed."""
    kill_after = random.Random(seed).randint(3, 45)
    return Scenario(
        seed=seed,
        kill_after=kill_after,
        durability=durability,
        db=tmp_path / "crash.db",
        side_file=tmp_path / "side.txt",
        log_file=tmp_path / "durable.log",
    )


def durable_env(scenario: Scenario) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "DURABLE_DB"}
    env.update(
        CRASH_SIDE_FILE=str(scenario.side_file),
        DURABLE_DURABILITY=scenario.durability,
        DURABLE_LOG_LEVEL="INFO",
    )
    return env


def durable_command(scenario: Scenario, *args: str) -> list[str]:
    return [sys.executable, "-m", "durable", "--db", str(scenario.db), *args]


def side_file_lines(scenario: Scenario) -> list[tuple[str, int]]:
    """Return the (slug, pid) executions recorded so far."""
    if not scenario.side_file.exists():
        return []
    lines = scenario.side_file.read_text().splitlines()
    return [(slug, int(pid)) for slug, pid in (line.split() for line in lines)]


def wait_for_executions(scenario: Scenario, process: subprocess.Popen[bytes]) -> None:
    """Return once `kill_after` task bodies have finished, without sleeping."""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    tick = threading.Event()
    while len(side_file_lines(scenario)) < scenario.kill_after:
        assert process.poll() is None, (
            f"durable run exited ({process.returncode}) before the kill: "
            f"{scenario.describe()}"
        )
        assert time.monotonic() < deadline, f"no progress: {scenario.describe()}"
        tick.wait(0.01)


def kill_run(scenario: Scenario) -> int:
    """Start `durable run`, kill -9 its process group mid-chain, and return its pid."""
    with scenario.log_file.open("ab") as log:
        process = subprocess.Popen(
            durable_command(
                scenario, "run", str(FLOW_FILE), "--run-id", scenario.run_id
            ),
            env=durable_env(scenario),
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: the kill reaches it all
        )
    try:
        wait_for_executions(scenario, process)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL, (
        f"durable run ended by itself ({process.returncode}), not by the kill: "
        f"{scenario.describe()}"
    )
    return process.pid


def resume_run(scenario: Scenario) -> int:
    """Run `durable resume` to the end and return its pid."""
    with scenario.log_file.open("ab") as log:
        process = subprocess.Popen(
            durable_command(scenario, "resume", scenario.run_id),
            env=durable_env(scenario),
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=45)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
    assert returncode == 0, f"durable resume exited {returncode}: {scenario.describe()}"
    return process.pid


@contextmanager
def read_only(db: Path) -> Iterator[sqlite3.Connection]:
    """Open the database without writing to it (no WAL checkpoint on close)."""
    uri = f"file:{db}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, isolation_level=None)) as conn:
        yield conn


def committed_successes(scenario: Scenario) -> set[str]:
    """Return the slugs whose Success SQLite had committed when the process died."""
    with read_only(scenario.db) as conn:
        rows = conn.execute(
            "SELECT task_slug FROM task_runs WHERE flow_run_id = ? AND state = 'Success'",
            (scenario.run_id,),
        ).fetchall()
        history = conn.execute(
            "SELECT DISTINCT t.task_slug FROM states s"
            " JOIN task_runs t ON t.id = s.task_run_id"
            " WHERE s.flow_run_id = ? AND s.name = 'Success'",
            (scenario.run_id,),
        ).fetchall()
    slugs = {slug for (slug,) in rows}
    assert slugs == {slug for (slug,) in history}, (
        f"task_runs and states disagree on committed Successes: {scenario.describe()}"
    )
    return slugs


def stored_results(scenario: Scenario) -> dict[str, object]:
    """Return every task run's stored result value, by slug."""
    with read_only(scenario.db) as conn:
        rows = conn.execute(
            "SELECT t.task_slug, r.serializer, r.value FROM task_runs t"
            " JOIN results r ON r.task_run_id = t.id WHERE t.flow_run_id = ?",
            (scenario.run_id,),
        ).fetchall()
    loaders: dict[str, Callable[[bytes], object]] = {
        "pickle": pickle.loads,
        "json": json.loads,
    }
    return {slug: loaders[serializer](value) for slug, serializer, value in rows}


def history_problems(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """Check each run's state history: ordered, timestamps nondecreasing, ends Success."""
    rows = conn.execute(
        "SELECT s.id, s.name, s.timestamp, coalesce(t.task_slug, '<flow run>')"
        " FROM states s LEFT JOIN task_runs t ON t.id = s.task_run_id"
        " WHERE s.flow_run_id = ? ORDER BY s.id",
        (run_id,),
    ).fetchall()
    histories: dict[str, list[tuple[str, float]]] = {}
    for _, name, timestamp, owner in rows:
        histories.setdefault(owner, []).append((name, timestamp))
    problems = [f"{slug}: no history" for slug in SLUGS if slug not in histories]
    for owner, history in histories.items():
        stamps = [timestamp for _, timestamp in history]
        if stamps != sorted(stamps):
            problems.append(f"{owner}: timestamps go backwards: {history}")
        if history[-1][0] != "Success":
            problems.append(f"{owner}: history ends in {history[-1][0]}: {history}")
    return problems


def check_executions(
    scenario: Scenario, committed: set[str], killed_pid: int, resumed_pid: int
) -> None:
    """Committed tasks ran once, before the kill; the others ran once more on resume."""
    where = scenario.describe()
    executions = side_file_lines(scenario)
    per_process = Counter(executions)
    totals = Counter(slug for slug, _ in executions)
    assert set(totals) == set(SLUGS), f"unexpected or missing slugs: {where}"
    assert {pid for _, pid in executions} <= {killed_pid, resumed_pid}, where
    assert max(per_process.values()) == 1, f"a task ran twice in one process: {where}"
    for slug in committed:
        assert totals[slug] == 1, (
            f"{slug} had a committed Success but ran again: {where}"
        )
        assert per_process[slug, killed_pid] == 1, f"{slug} never ran before: {where}"
    for slug in set(SLUGS) - committed:
        assert per_process[slug, resumed_pid] == 1, (
            f"{slug} not rerun on resume: {where}"
        )
        assert 1 <= totals[slug] <= 2, f"{slug} ran {totals[slug]} times: {where}"


def check_database(scenario: Scenario) -> None:
    """The resumed run succeeded, with all 50 correct results and a sound history."""
    where = scenario.describe()
    assert stored_results(scenario) == expected_results(), f"wrong results: {where}"
    with read_only(scenario.db) as conn:
        (integrity,) = conn.execute("PRAGMA integrity_check").fetchone()
        (flow_state,) = conn.execute(
            "SELECT state FROM flow_runs WHERE id = ?", (scenario.run_id,)
        ).fetchone()
        task_states = conn.execute(
            "SELECT task_slug, state, has_result FROM task_runs WHERE flow_run_id = ?",
            (scenario.run_id,),
        ).fetchall()
        problems = history_problems(conn, scenario.run_id)
    assert integrity == "ok", f"integrity_check: {integrity}: {where}"
    assert flow_state == "Success", f"flow run state {flow_state}: {where}"
    assert sorted(task_states) == [(slug, "Success", 1) for slug in sorted(SLUGS)], (
        where
    )
    assert not problems, "\n".join([*problems, where])


def crash_and_resume(scenario: Scenario) -> None:
    """Kill a run mid-chain, note what was committed, resume it, and check everything."""
    killed_pid = kill_run(scenario)
    committed = committed_successes(scenario)
    # Commits are ordered (group commit, pipelined): what survived a kill is a prefix of
    # the chain, never a task without the one before it.
    assert committed == set(SLUGS[: len(committed)]), (
        f"committed Successes are not a prefix of the chain: {sorted(committed)} "
        f"{scenario.describe()}"
    )
    resumed_pid = resume_run(scenario)
    check_executions(scenario, committed, killed_pid, resumed_pid)
    check_database(scenario)


@pytest.mark.parametrize("seed", FAST_SEEDS)
def test_killed_chain_resumes_without_rerunning_committed_tasks(
    tmp_path: Path, seed: int
) -> None:
    crash_and_resume(make_scenario(tmp_path, seed))


@pytest.mark.slow
@pytest.mark.parametrize("seed", SLOW_SEEDS)
def test_killed_chain_resumes_correctly_for_many_kill_points(
    tmp_path: Path, seed: int
) -> None:
    durability = "full" if seed % 2 == 0 else "normal"
    crash_and_resume(make_scenario(tmp_path, seed, durability))
