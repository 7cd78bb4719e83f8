"""The reliability campaign's harness (RELIABILITY.md 5.0): real durable processes in
process groups of their own, kill -9 / SIGSTOP / SIGCONT of a whole group, crash images
copied while the group is frozen, and the two oracles that survive a kill: ACK lines
(`DURABLE_ACK`, written after COMMIT returned) and the side-channel execution log (task
bodies append `start ...` / `end ...` lines with one `os.write` on an O_APPEND fd).

Other reliability modules import from here; the names below are stable:
`seed`, `durable_env`, `spawn`, `kill9`, `freeze`, `thaw`, `snapshot`, `read_acks`,
`read_executions`, `wait_until`, `keep_artifacts`, `assert_no_leaks`. Nothing here sleeps:
waits poll a condition with a deadline through `threading.Event().wait`.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
FLOWS = Path(__file__).resolve().parent / "flows"
CAMPAIGN = FLOWS / "campaign.py"
"""The campaign's flow file: the 500-task flow and the special-purpose ones."""

SEED_ENV = "REL_SEED"
ARTIFACTS_ENV = "REL_ARTIFACTS"
SIDE_LOG_ENV = "REL_SIDE_LOG"
"""Where the campaign's task bodies append their execution lines."""
TASK_SCALE_ENV = "REL_TASK_SCALE"
"""A factor on the task bodies' durations (1.0: as RELIABILITY.md says)."""
TOKEN_ENV = "REL_PROCESS_TOKEN"
"""Marks every process the harness starts (and their descendants), to find leaks."""

PROCESS_TOKEN = uuid.uuid4().hex
"""This test session's marker value for `TOKEN_ENV`."""
_spawned: list[subprocess.Popen[bytes]] = []
_pycache: Path | None = None


# Seeds and artifacts -----------------------------------------------------------------
def seed() -> int:
    """Return the campaign seed: `$REL_SEED`, else a random one; print it either way."""
    raw = os.environ.get(SEED_ENV, "").strip()
    value = int(raw) if raw else random.SystemRandom().randrange(1, 2**31)
    print(f"{SEED_ENV}={value}", flush=True)
    return value


def keep_artifacts(test: str, seed: int, *paths: Path) -> Path | None:
    """Copy `paths` (files or directories) to `$REL_ARTIFACTS/<test>/<seed>/`.

    Returns the directory, or None when REL_ARTIFACTS is not set. `-shm` files are
    skipped: they are rebuilt from the WAL and copying one mid-write means nothing.
    """
    root = os.environ.get(ARTIFACTS_ENV, "").strip()
    if not root:
        return None
    safe = "".join(c if c.isalnum() or c in "-_.[]" else "_" for c in test)
    target = Path(root) / safe / str(seed)
    target.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("*-shm", "pycache")
    for path in paths:
        if path.is_dir():
            shutil.copytree(path, target / path.name, ignore=ignore, dirs_exist_ok=True)
        elif path.is_file() and not path.name.endswith("-shm"):
            shutil.copy2(path, target / path.name)
    print(f"artifacts kept in {target}", flush=True)
    return target


# Processes ---------------------------------------------------------------------------
def set_pycache(directory: Path) -> None:
    """Let spawned processes cache bytecode in `directory` (the conftest sets one per
    session): without it every process compiles durable again, ~0.15 s of CPU each."""
    global _pycache
    _pycache = directory


def durable_env(
    extra: Mapping[str, str] | None = None, *, side_log: Path | None = None
) -> dict[str, str]:
    """The environment for a spawned process: this one's, without the test hooks and the
    database variables, with the leak marker, `extra` and `side_log` (REL_SIDE_LOG)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DURABLE_DB", "DURABLE_CRASH_AT", "DURABLE_ACK", "REL_SIDE_LOG")
    }
    env[TOKEN_ENV] = PROCESS_TOKEN
    env.setdefault("DURABLE_LOG_LEVEL", "INFO")
    if _pycache is not None:
        env["PYTHONPYCACHEPREFIX"] = str(_pycache)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    if side_log is not None:
        env[SIDE_LOG_ENV] = str(side_log)
    env.update(extra or {})
    return env


def durable_command(db: Path, *args: str) -> list[str]:
    """`python -m durable --db DB ARGS` with this interpreter."""
    return [sys.executable, "-m", "durable", "--db", str(db), *args]


def spawn(
    db: Path,
    *args: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    side_log: Path | None = None,
    ack: Path | None = None,
    crash_at: str | None = None,
    cwd: Path | None = None,
    command: list[str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start `durable --db DB ARGS` as the leader of a new process group.

    Its output (stdout and stderr) is appended to `log`. `ack` sets DURABLE_ACK (ACK
    lines are appended to that file: it survives the kill, a pipe would not), `crash_at`
    sets DURABLE_CRASH_AT, `side_log` REL_SIDE_LOG. `command` replaces the durable
    command line (a helper script). The process is killed in the test's teardown if
    still running (see `reap_all`).
    """
    extra = dict(env or {})
    if ack is not None:
        extra["DURABLE_ACK"] = str(ack)
    if crash_at is not None:
        extra["DURABLE_CRASH_AT"] = crash_at
    with log.open("ab") as out:
        process = subprocess.Popen(
            command or durable_command(db, *args),
            stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env=durable_env(extra, side_log=side_log), cwd=cwd or REPO,
            start_new_session=True,  # its own group: one killpg reaches it all
        )  # fmt: skip
    _spawned.append(process)
    return process


def group_pids(pgid: int) -> list[int]:
    """The live (not zombie) processes of process group `pgid`."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            pids.append(int(entry.name))
    return pids


def _state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "X"
    return stat[stat.rindex(")") + 2 :].split()[0]


def kill9(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGKILL the process group of `process` and reap its leader; return its code."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    code = process.wait(timeout=timeout)
    wait_until(lambda: not group_pids(process.pid), timeout, "the killed group to die")
    return code


def freeze(
    process: subprocess.Popen[bytes],
    timeout: float = 10.0,
    *,
    unlocked: Path | None = None,
) -> list[int]:
    """SIGSTOP the process group of `process`; return once every member is stopped.

    SIGSTOP is delivered asynchronously: the wait makes sure no member is still in
    the middle of a write when the caller copies files. With `unlocked=DB`, the group
    is thawed and frozen again (within `timeout`) until none of it holds the write lock
    of database DB: a process frozen inside a write transaction blocks every other
    writer of the database until it resumes or dies (SQLite has one writer at a time).
    """
    deadline = time.monotonic() + timeout
    members: list[int] = []

    def all_stopped() -> bool:
        members[:] = group_pids(process.pid)
        return all(_state(pid) in ("T", "t", "Z", "X") for pid in members)

    while True:
        os.killpg(process.pid, signal.SIGSTOP)
        wait_until(all_stopped, timeout, "the process group to stop")
        if unlocked is None or not write_locked(unlocked):
            return members
        thaw(process)
        if time.monotonic() > deadline:
            raise AssertionError(f"{unlocked} stayed write-locked for {timeout:g} s")
        pause(random.uniform(0.005, 0.03))


def write_locked(db: Path) -> bool:
    """Whether some connection holds the write lock of `db` (checked without waiting)."""
    with closing(sqlite3.connect(db, timeout=0, isolation_level=None)) as conn:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        conn.execute("ROLLBACK")
        return False


def thaw(process: subprocess.Popen[bytes]) -> None:
    """SIGCONT the process group of `process`."""
    try:
        os.killpg(process.pid, signal.SIGCONT)
    except ProcessLookupError:
        pass


def reap_all(baseline: frozenset[int] = frozenset()) -> list[str]:
    """Kill every spawned group still running and return the leaks found.

    A leak is a live child of this process not in `baseline` (the children that existed
    before the test), or a live process carrying this session's marker, once the
    spawned groups were killed: something escaped its process group or outlived it.
    """
    for process in _spawned:
        if process.returncode is None:
            try:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
    _spawned.clear()
    return assert_no_leaks(baseline, raise_=False)


def children() -> set[int]:
    """This process's live descendants (zombies excluded)."""
    found = set()
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE:
                found.add(child.pid)
        except psutil.Error:
            continue
    return found


def marked_processes() -> set[int]:
    """Live processes (not zombies) whose environment carries this session's marker."""
    needle = f"{TOKEN_ENV}={PROCESS_TOKEN}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ and _state(int(entry.name)) not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def assert_no_leaks(
    baseline: frozenset[int] = frozenset(), *, raise_: bool = True, grace: float = 5.0
) -> list[str]:
    """Check that no child of this process (outside `baseline`) and no marked process
    is left running, waiting up to `grace` seconds for exiting ones.

    Leaked processes are killed (so one leak does not fail every later test), then
    reported: raised as AssertionError, or returned when `raise_` is False.
    """
    deadline = time.monotonic() + grace
    while True:
        leaked = (children() - baseline) | marked_processes()
        if not leaked or time.monotonic() > deadline:
            break
        threading.Event().wait(0.05)
    leaks = []
    for pid in sorted(leaked):
        try:
            leaks.append(f"{pid}: {' '.join(psutil.Process(pid).cmdline())}")
            os.kill(pid, signal.SIGKILL)
        except (psutil.Error, ProcessLookupError):
            pass
    if leaks and raise_:
        raise AssertionError(f"leaked processes: {leaks}")
    return leaks


def pause(seconds: float) -> None:
    """Block this thread for `seconds` of real time (a real process is being watched)."""
    threading.Event().wait(seconds)


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `condition` every 10 ms until it is true; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        threading.Event().wait(0.01)


# Crash images ------------------------------------------------------------------------
def snapshot(db: Path, dest: Path, *extra: Path) -> Path:
    """Copy `db`, its `-wal` and its result files (never `-shm`) into directory `dest`.

    Call it while the writer is frozen (or dead): the copy is then what a power cut at
    that instant would leave if every write had reached the disk. `extra` files (a side
    log, an ACK file) are copied alongside, frozen at the same instant. Returns the
    copied database's path.
    """
    dest.mkdir(parents=True, exist_ok=True)
    copy = dest / db.name
    shutil.copyfile(db, copy)
    wal = db.with_name(db.name + "-wal")
    if wal.exists():
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
    results = db.with_name(db.name + ".results")
    if results.is_dir():
        shutil.copytree(results, dest / results.name, dirs_exist_ok=True)
    for path in extra:
        if path.exists():
            shutil.copyfile(path, dest / path.name)
    return copy


# Oracles -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Ack:
    """One `ACK <kind> <id> <state>` line: a write that had committed."""

    kind: str
    """result, task, run or claim."""
    id: str
    state: str
    """The state committed (for a claim: the worker's name)."""


def read_acks(path: Path) -> list[Ack]:
    """The ACK lines of `path`, in order (a torn last line is dropped)."""
    if not path.exists():
        return []
    acks = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split(" ", 3)
        if len(parts) == 4 and parts[0] == "ACK":
            acks.append(Ack(parts[1], parts[2], parts[3]))
    return acks


@dataclass(frozen=True, slots=True)
class Execution:
    """One side-log line: a task body started or ended, in process `pid`."""

    event: str
    """start or end."""
    run: str
    slug: str
    task_run_id: str
    attempt: int
    pid: int


def read_executions(path: Path) -> list[Execution]:
    """The side log's lines, in order: `<event> <run> <slug> <task_run_id> <attempt> <pid>`."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 6:
            event, run, slug, task_run_id, attempt, pid = parts
            out.append(Execution(event, run, slug, task_run_id, int(attempt), int(pid)))
    return out


def count_starts(executions: Iterable[Execution]) -> dict[str, int]:
    """How many times each slug's body started."""
    counts: dict[str, int] = {}
    for e in executions:
        if e.event == "start":
            counts[e.slug] = counts.get(e.slug, 0) + 1
    return counts


# The campaign's flows ----------------------------------------------------------------
MANY_TASKS = 500
MANY_SLUGS = tuple(f"t{i:03d}" for i in range(MANY_TASKS))


def expected_many() -> dict[str, str]:
    """The 500-task flow's correct results, computed apart from the flow file."""
    return {
        f"t{i:03d}": hashlib.sha256(f"task {i}".encode()).hexdigest()
        for i in range(MANY_TASKS)
    }


def query(db: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    """Run one read-only query on `db` (its -wal is read, never checkpointed)."""
    if not db.exists():
        return []
    with closing(
        sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    ) as conn:
        conn.execute("PRAGMA busy_timeout=30000")
        return conn.execute(sql, args).fetchall()


def flow_run_state(db: Path, run_id: str) -> str | None:
    """The flow run's state, or None if the database has no such run (yet)."""
    try:
        rows = query(db, "SELECT state FROM flow_runs WHERE id = ?", run_id)
    except sqlite3.OperationalError:  # no schema yet
        return None
    return str(rows[0][0]) if rows else None


def read_results(
    db: Path, run_id: str, conn: sqlite3.Connection | None = None
) -> dict[str, Any]:
    """Every stored result of the run's task runs, loaded, by slug (`conn`: an open
    connection to `db` to read through).

    Inline pickle and JSON values are loaded here; a result file (`file:` serializer)
    is read from the results directory, with its size and hash checked.
    """
    out: dict[str, Any] = {}
    sql = (
        "SELECT t.task_slug, t.map_index, r.serializer, r.value FROM task_runs t"
        " JOIN results r ON r.task_run_id = t.id WHERE t.flow_run_id = ?"
    )
    rows = query(db, sql, run_id) if conn is None else conn.execute(sql, (run_id,))
    for slug, index, serializer, value in rows:
        key = slug if index < 0 else f"{slug}[{index}]"
        if serializer == "pickle":
            out[key] = pickle.loads(value)
        elif serializer == "json":
            out[key] = json.loads(value)
        else:
            out[key] = _load_file_result(db, serializer, bytes(value))
    return out


def _load_file_result(db: Path, serializer: str, value: bytes) -> Any:
    from durable.store.results import Reference, results_directory

    reference = Reference.decode(value)
    data = (results_directory(db) / reference.file).read_bytes()
    assert len(data) == reference.size, f"result file {reference.file}: wrong size"
    digest = hashlib.sha256(data).hexdigest()
    assert digest == reference.sha256, f"result file {reference.file}: wrong hash"
    inner = serializer.removeprefix("file:")
    return pickle.loads(data) if inner == "pickle" else json.loads(data)


@dataclass
class Campaign:
    """The files of one flow run driven through crashes: database, side log, ACK file
    and process output, all in `root`."""

    root: Path
    run_id: str
    flow: str = "many"
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def db(self) -> Path:
        return self.root / "rel.db"

    @property
    def side_log(self) -> Path:
        return self.root / "side.log"

    @property
    def acks(self) -> Path:
        return self.root / "acks.log"

    @property
    def log(self) -> Path:
        return self.root / "durable.log"

    def start(
        self, *, crash_at: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """`durable run` the flow (first time) or `durable resume` it (after a crash)."""
        if flow_run_state(self.db, self.run_id) is None:
            args = ["run", f"{CAMPAIGN}:{self.flow}", "--run-id", self.run_id]
        else:
            args = ["resume", self.run_id]
        return spawn(
            self.db, *args, log=self.log, env={**self.env, **(env or {})},
            side_log=self.side_log, ack=self.acks, crash_at=crash_at,
        )  # fmt: skip

    def executions(self) -> list[Execution]:
        return read_executions(self.side_log)

    def tail(self, chars: int = 3000) -> str:
        """The end of the processes' output, for assertion messages."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- durable output ({self.log}) ---\n{text[-chars:]}"


# Workers -----------------------------------------------------------------------------
def register(db: Path, path: Path = CAMPAIGN) -> list[str]:
    """Register every flow of `path` on `db` (as `durable register` does); their names."""
    import anyio

    from durable.cli.loading import load_flows
    from durable.store import Store
    from durable.store.packaging import package_flow
    from durable.timesource import SYSTEM_TIME

    flows = load_flows(str(path))

    async def save() -> None:
        store = await Store.open(db)
        try:
            for flow in flows.values():
                now = SYSTEM_TIME.timestamp()
                registration = package_flow(flow, file=path, registered_at=now)
                await store.register_flow(registration)
        finally:
            await store.close()

    anyio.run(save)
    return list(flows)


def trigger(db: Path, flow: str, parameters: Mapping[str, Any] | None = None) -> str:
    """Ask for a run of registered `flow` now (as `durable trigger` does); its run id."""
    import anyio

    from durable import control
    from durable.store import Store

    async def ask() -> str:
        store = await Store.open(db)
        try:
            triggered = await control.trigger(store, flow, dict(parameters or {}))
            return str(triggered.run.id)
        finally:
            await store.close()

    return anyio.run(ask)


def start_worker(
    db: Path,
    *args: str,
    log: Path,
    env: Mapping[str, str] | None = None,
    side_log: Path | None = None,
    ack: Path | None = None,
    crash_at: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start `durable worker --poll 0.1 ARGS` in a process group of its own (its run
    processes are forked into the same group)."""
    return spawn(
        db, "worker", "--poll", "0.1", *args, log=log, env=env,
        side_log=side_log, ack=ack, crash_at=crash_at,
    )  # fmt: skip


def scheduled_run(db: Path, run_id: str) -> dict[str, Any]:
    """The scheduled_runs row of `run_id`, as a dict ({} if none)."""
    with closing(
        sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    ) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute(
            "SELECT * FROM scheduled_runs WHERE id = ?", (run_id,)
        ).fetchone()
    return dict(row) if row is not None else {}
