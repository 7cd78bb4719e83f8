"""Helpers of the scheduler and concurrency campaigns (RELIABILITY 5.3 and 5.4): real
`durable` processes with a steppable wall clock, seeds, artifacts, direct reads of the
database, and process-leak checks.

Generic pieces that the shared harness (tests/reliability/harness.py) may take over
later: `rel_seed`, `keep_artifacts_on_failure`, `leaked_processes`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from durable.timesource import FAKE_CLOCK_ENV, SYSTEM_TIME
from tests.worker.processes import pause

PYTHON = sys.executable
MARK = ("DURABLE_TEST_MARK", uuid.uuid4().hex)
"""An environment variable every process these helpers start carries (and its children
inherit): teardown ends only processes that carry it, never a stranger that happens to
reuse a pid (pids wrap quickly on a busy machine)."""


def rel_seed(what: str) -> int:
    """The test's seed: REL_SEED if set, else a random one; printed either way."""
    seed = int(os.environ.get("REL_SEED") or random.randrange(2**32))
    print(f"{what} seed: {seed} (REL_SEED={seed} replays it)")
    return seed


@contextmanager
def keep_artifacts_on_failure(
    name: str, seed: int | str, paths: Sequence[Path]
) -> Iterator[None]:
    """On any failure inside, copy `paths` (files or folders, `-shm` never) to
    `$REL_ARTIFACTS/<name>/<seed>/` when REL_ARTIFACTS is set, then re-raise."""
    try:
        yield
    except BaseException:
        root = os.environ.get("REL_ARTIFACTS")
        if root:
            target = Path(root) / name / str(seed)
            target.mkdir(parents=True, exist_ok=True)
            for path in paths:
                if path.is_dir():
                    shutil.copytree(
                        path, target / path.name, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*-shm", "pycache"),
                    )  # fmt: skip
                elif path.exists() and not path.name.endswith("-shm"):
                    shutil.copy2(path, target / path.name)
            print(f"artifacts kept in {target}")
        raise


def write_clock(path: Path, offset: float) -> None:
    """Step the wall clock of every process started with `clock_env(path)`: it reads
    the real time plus `offset` seconds (replaced atomically, so never half-written)."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"offset": offset}))
    os.replace(temporary, path)


def clock_env(path: Path) -> dict[str, str]:
    """The environment that puts a process on the steppable clock at `path`."""
    return {FAKE_CLOCK_ENV: str(path)}


def durable_env(cwd: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a `durable` process: bytecode cached under `cwd` (as an
    installed durable has it, see tests/worker/processes.py), plus `extra`."""
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(cwd / "pycache"), MARK[0]: MARK[1]}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra or {})
    return env


def start_durable(
    db: Path, cwd: Path, args: Sequence[str], *, log: str,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start `durable --db DB ARGS` as the leader of a new process group, its output
    appended to `cwd/log`."""
    with (cwd / log).open("ab") as out:
        return subprocess.Popen(
            [PYTHON, "-m", "durable", "--db", str(db), *args],
            stdout=out, stderr=out, cwd=cwd, env=durable_env(cwd, env),
            start_new_session=True,
        )  # fmt: skip


def start_worker(
    db: Path, cwd: Path, name: str, *args: str, env: dict[str, str] | None = None,
    log: str = "workers.log",
) -> subprocess.Popen[bytes]:  # fmt: skip
    """Start `durable worker --name NAME ARGS` in a process group of its own."""
    return start_durable(db, cwd, ["worker", "--name", name, *args], log=log, env=env)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group `process` leads (its fork server and runs too)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def terminate_and_time(processes: Sequence[subprocess.Popen[Any]]) -> list[float]:
    """SIGTERM each process and return how long each took to exit (60 s at most)."""
    began = SYSTEM_TIME.monotonic()
    for process in processes:
        if process.returncode is None:
            process.terminate()
    took = []
    for process in processes:
        try:
            process.wait(timeout=max(60 - (SYSTEM_TIME.monotonic() - began), 0.1))
        except subprocess.TimeoutExpired:
            pass
        took.append(SYSTEM_TIME.monotonic() - began)
    return took


def marked(sessions: Sequence[int]) -> list[psutil.Process]:
    """The live processes that these helpers started (they carry MARK), in the
    sessions (process groups) led by `sessions`."""
    found = []
    for proc in psutil.process_iter():
        try:
            if (
                proc.status() == psutil.STATUS_ZOMBIE
                or os.getsid(proc.pid) not in sessions
            ):
                continue
            if proc.environ().get(MARK[0]) == MARK[1]:
                found.append(proc)
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return found


def kill_groups(processes: Sequence[subprocess.Popen[Any]]) -> None:
    """Teardown: SIGKILL the group of every process still running, and any process
    of ours left in the group of one that already ended (a fork server, a run)."""
    for process in processes:
        if process.returncode is None:
            kill_group(process)
    for proc in marked([process.pid for process in processes]):
        try:
            proc.kill()
        except psutil.Error:
            continue


def leaked_processes(sessions: Sequence[int], born_after: float) -> list[str]:
    """Our processes still alive in the sessions led by `sessions`, and the live
    children this test process started since `born_after` (a `time.time()` taken when
    the test began): both must be none after a clean stop.

    Children from before the test are not its own: an earlier test in the same pytest
    process may have left a long-lived helper (multiprocessing's resource tracker, a
    Dask cluster's), which lives as long as pytest does.
    """
    found = [f"{proc.pid} {proc.name()}" for proc in marked(sessions)]
    for child in psutil.Process().children(recursive=True):
        try:
            if child.create_time() < born_after - 0.5:  # clock ticks: a margin
                continue
            if child.status() != psutil.STATUS_ZOMBIE:
                found.append(f"child {child.pid} {child.name()}")
        except psutil.Error:
            continue
    return sorted(set(found))


def query(db: Path, sql: str, args: Sequence[Any] = ()) -> list[Any]:
    """Run one read on a short read-only connection of the test's own."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, tuple(args)).fetchall()
    finally:
        conn.close()


def integrity(db: Path) -> str:
    """`PRAGMA integrity_check`, joined: 'ok' when the file is sound."""
    return " ".join(row[0] for row in query(db, "PRAGMA integrity_check"))


def duplicate_ticks(db: Path) -> list[Any]:
    """RELIABILITY's duplicate check: (flow, scheduled_for) seen more than once."""
    return query(
        db,
        "SELECT flow_name, scheduled_for, COUNT(*) FROM scheduled_runs"
        " GROUP BY flow_name, scheduled_for HAVING COUNT(*) > 1",
    )


def wal_bytes(db: Path) -> int:
    """The size of the database's `-wal` file (0 if there is none)."""
    try:
        return os.stat(f"{db}-wal").st_size
    except OSError:
        return 0


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of `values`, nearest rank (0.0 when empty)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(int(-(-q * len(ordered) // 100)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def wait_until(condition: Any, timeout: float, what: str, every: float = 0.05) -> None:
    """Poll `condition()` until it is true; fail naming `what` after `timeout` s."""
    deadline = SYSTEM_TIME.monotonic() + timeout
    while not condition():
        assert SYSTEM_TIME.monotonic() < deadline, f"timed out after {timeout}s: {what}"
        pause(every)


LOCK_WORDS = ("database is locked", "database table is locked", "sqlite_busy")
"""What a lock error looks like wherever it surfaces (output, logs, states)."""


def lock_errors(text: str) -> list[str]:
    """The lines of `text` that report a locked database."""
    return [
        line for line in text.splitlines() if any(w in line.lower() for w in LOCK_WORDS)
    ]
