"""RELIABILITY 5.4, group D (concurrency and locking), on durable's architecture: there
is no daemon; each `durable worker` creates and claims scheduled runs and launches each
run in a process of its own, whose checkpoint writer group-commits on one writer
connection; the CLI and the TUI read through read-only connections. The "daemon's"
WAL maintenance is a step of every worker's pass (durable/worker/maintenance.py).

- **D1 full stack on one DB** (`test_d1_...`, 60 s PR / 10 min nightly): 4 `durable
  worker` processes running two 1 s schedules of 10 tasks each (~20 tasks/s, results of
  1-50 KB), the TUI's read path (a headless Textual `App.run_test()` with its refresh
  timer, walking the areas, in a subprocess), and the CLI (`runs`, `show`, `logs`, one
  every 0.5 s). There is no `logs -f` follower: durable has no follow mode (not built).
  Pass: 0 lock errors anywhere (outputs, logs, states), integrity ok, WAL <= 64 MiB in
  every 1 s sample and <= 4 MiB within 10 s after the load stops, CLI p95 <= 300 ms and
  TUI read p95 <= 250 ms, >= 90% of the offered tasks done (durable's load is schedule
  driven: "throughput >= 90% of a run without TUI and CLI" becomes "keeps up with >= 90%
  of its schedules", no second baseline run), 0 leaked processes, each process out
  within 5 s of SIGTERM. The CLI's time is measured in-process, after `import
  durable.cli` (about 0.4-0.5 s of imports on this machine, not a database cost,
  reported apart). Internal BUSY retries are not counted (no counter is built); an
  exhausted one would surface as a lock error, which is checked.
- **D2 checkpoint starvation** (`test_d2_...`, nightly): a reader holds a read
  transaction 60 s under load: a worker warns once; after the reader lets go the WAL is
  back under 4 MiB within 10 s, no writer error.
- **D3 static guard** (`test_d3_...`): outside durable/store/, no `sqlite3.connect` and
  no `BEGIN` (allow-list with reasons below); no `isolation_level` other than None;
  every SQL string passed to execute/executemany/executescript/_fetch is a literal, a
  module constant, placeholders, or built from those (f-strings interpolate only
  constants; reviewed SQL builders are named). `transaction()` retries SQLITE_BUSY at
  most 5 times, with jitter.
- **D4 cold start race** (`test_d4_...`, x5 PR / x20 nightly): 6 `durable run`
  processes released at once on a missing database.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import pytest

import durable
import tui
from durable.errors import StoreError
from durable.store import connection
from durable.store.schema import SCHEMA_VERSION
from durable.timesource import SYSTEM_TIME
from durable.worker import maintenance
from durable.worker.maintenance import WalMaintenance
from tests.reliability._sched_helpers import (
    PYTHON,
    durable_env,
    integrity,
    keep_artifacts_on_failure,
    kill_groups,
    leaked_processes,
    lock_errors,
    percentile,
    query,
    start_worker,
    terminate_and_time,
    wait_until,
    wal_bytes,
)
from tests.worker.processes import pause, register_file

MIB = 1024 * 1024

LOAD_FLOWS = """\
import logging
import os
import random
from datetime import timedelta

import pendulum

from durable import Flow, task
from durable.schedules import IntervalSchedule

log = logging.getLogger("load")


@task
def produce(i):
    size = random.randint(1024, 50 * 1024)
    log.info("task %s makes %s bytes", i, size)
    return os.urandom(size)


second = IntervalSchedule(pendulum.datetime(2020, 1, 1, tz="UTC"), timedelta(seconds=1))
with Flow("load-a", schedule=second) as load_a:
    for i in range(10):
        produce(i)
with Flow("load-b", schedule=second) as load_b:
    for i in range(10):
        produce(i)
"""
TASKS_PER_RUN = 10

TUI_PROBE = """\
import asyncio
import itertools
import json
import signal
import sys
import time

from tui.app import DurableApp

KEYS = ["2", "enter", "l", "G", "escape", "1", "3", "4", "5", "2", "j", "enter", "d",
        "escape"]
READS, ERRORS = [], []


class ProbedApp(DurableApp):
    def read(self, query):
        began = time.perf_counter()
        try:
            return super().read(query)
        finally:
            READS.append(time.perf_counter() - began)

    def db_error(self, exc):
        ERRORS.append(repr(exc))
        super().db_error(exc)


async def main(db):
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    app = ProbedApp(db, refresh=0.5)
    async with app.run_test(size=(120, 40)) as pilot:
        print("READY", flush=True)
        for key in itertools.cycle(KEYS):
            if stop.is_set():
                break
            await pilot.press(key)
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass
    print(json.dumps({"reads": READS, "errors": ERRORS}), flush=True)


asyncio.run(main(sys.argv[1]))
"""

CLI_PROBE = """\
import atexit
import sys
import time

began = time.perf_counter()
import durable.cli  # noqa: E402

imported = time.perf_counter()
atexit.register(lambda: sys.stderr.write(
    f"\\nCLI-TIME {time.perf_counter() - imported:.4f} {imported - began:.4f}"
    f" {time.process_time():.4f}\\n"))
sys.argv = ["durable", *sys.argv[1:]]
durable.cli.main()
"""
"""Runs the real CLI and reports, on exit, its time after the imports and the imports'."""


@dataclass
class CliStats:
    """What the CLI loop saw."""

    net: list[float] = field(default_factory=list)
    """Each command's time after `import durable.cli` (its own work)."""
    imports: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    """End to end, interpreter start included."""
    failures: list[str] = field(default_factory=list)
    output: list[str] = field(default_factory=list)
    by_command: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Per command: (own time, CPU time of the whole process)."""

    def summary(self) -> str:
        return ", ".join(
            f"{name} p95 {percentile([t for t, _ in times], 95) * 1000:.0f} ms "
            f"(CPU p50 {percentile([c for _, c in times], 50) * 1000:.0f} ms)"
            for name, times in sorted(self.by_command.items())
        )


def run_cli(db: Path, cwd: Path, args: list[str], stats: CliStats) -> None:
    began = SYSTEM_TIME.monotonic()
    done = subprocess.run(
        [PYTHON, "-c", CLI_PROBE, "--db", str(db), *args], capture_output=True,
        text=True, cwd=cwd, env=durable_env(cwd), timeout=60, start_new_session=True,
        check=False,
    )  # fmt: skip
    stats.total.append(SYSTEM_TIME.monotonic() - began)
    stats.output.append(done.stdout + done.stderr)
    if done.returncode != 0:
        stats.failures.append(f"{args}: exit {done.returncode}: {done.stderr[-500:]}")
    found = re.search(r"CLI-TIME ([\d.]+) ([\d.]+) ([\d.]+)", done.stderr)
    if found:
        stats.net.append(float(found[1]))
        stats.imports.append(float(found[2]))
        times = stats.by_command.setdefault(args[0], [])
        times.append((float(found[1]), float(found[3])))


class WalSampler:
    """Samples the WAL's size every second on a thread of its own."""

    def __init__(self, db: Path) -> None:
        self.db, self.samples = db, list[tuple[float, int]]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((SYSTEM_TIME.monotonic(), wal_bytes(self.db)))
            self._stop.wait(1.0)

    @property
    def peak(self) -> int:
        return max((size for _, size in self.samples), default=0)


def stored_lock_errors(db: Path) -> list[str]:
    """Lock errors that reached the database: states, task and flow runs, logs."""
    found = []
    for sql in (
        "SELECT message FROM states WHERE message IS NOT NULL",
        "SELECT state_message FROM task_runs WHERE state_message IS NOT NULL",
        "SELECT state_message FROM flow_runs WHERE state_message IS NOT NULL",
        "SELECT message FROM logs",
        "SELECT message FROM scheduled_runs WHERE message IS NOT NULL",
    ):
        for (text,) in query(db, sql):
            found += lock_errors(str(text))
    return found


def offered_and_done(db: Path, after: float, until: float) -> tuple[int, int]:
    """Task runs the schedules offered in (after, until], and how many succeeded."""
    ticks = query(
        db,
        "SELECT COUNT(*) FROM scheduled_runs WHERE scheduled_for > ?"
        " AND scheduled_for <= ?",
        (after, until),
    )[0][0]
    done = query(
        db,
        "SELECT COUNT(*) FROM task_runs t JOIN scheduled_runs s"
        " ON s.id = t.flow_run_id WHERE s.scheduled_for > ? AND s.scheduled_for <= ?"
        " AND t.state = 'Success'",
        (after, until),
    )[0][0]
    return ticks * TASKS_PER_RUN, done


def idle(db: Path) -> bool:
    """No run is waiting or running."""
    return not query(
        db,
        "SELECT COUNT(*) FROM scheduled_runs"
        " WHERE status IN ('Scheduled', 'Late', 'Running')",
    )[0][0]


@pytest.mark.parametrize(
    "seconds",
    [
        pytest.param(60, id="60s", marks=[pytest.mark.reliability,
                                          pytest.mark.timeout(240)]),
        pytest.param(600, id="10min", marks=[pytest.mark.nightly,
                                             pytest.mark.timeout(900)]),
    ],
)  # fmt: skip
def test_d1_workers_tui_and_cli_on_one_database_never_see_it_locked(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch, seconds: int,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    born_after = SYSTEM_TIME.timestamp()  # children older are not ours
    source = tmp_path / "load.py"
    source.write_text(LOAD_FLOWS)
    (tmp_path / "tui_probe.py").write_text(TUI_PROBE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    registered = SYSTEM_TIME.timestamp()
    register_file(db, source, registered_at=registered)
    log = tmp_path / "workers.log"
    workers = [start_worker(db, tmp_path, f"w{i}", "--catchup", "skip", "--grace", "3")
               for i in range(4)]  # fmt: skip
    everyone: list[subprocess.Popen[Any]] = list(workers)
    stats = CliStats()
    with keep_artifacts_on_failure("D1", seconds, [db, log]):
        try:
            wait_until(lambda: query(db, "SELECT COUNT(*) FROM task_runs"
                                     " WHERE state = 'Success'")[0][0] > 0, 30,
                       "the first tasks done")  # fmt: skip
            root = Path(durable.__file__).parent.parent
            tui_process = subprocess.Popen(
                [PYTHON, str(tmp_path / "tui_probe.py"), str(db)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                cwd=root, env=durable_env(tmp_path), start_new_session=True,
            )  # fmt: skip
            everyone.append(tui_process)
            assert tui_process.stdout is not None
            assert tui_process.stdout.readline().strip() == "READY"
            with WalSampler(db) as sampler:
                load_from = SYSTEM_TIME.timestamp()
                deadline = SYSTEM_TIME.monotonic() + seconds
                commands = cli_commands(db)
                while SYSTEM_TIME.monotonic() < deadline:
                    began = SYSTEM_TIME.monotonic()
                    run_cli(db, tmp_path, next(commands), stats)
                    pause(max(0.5 - (SYSTEM_TIME.monotonic() - began), 0.0))
                load_until = SYSTEM_TIME.timestamp()
                # The load stops: both schedules paused; once the runs in flight
                # end, the WAL must shrink within 10 s (the workers' maintenance).
                run_cli(db, tmp_path, ["schedule", "pause", "load-a"], stats)
                run_cli(db, tmp_path, ["schedule", "pause", "load-b"], stats)
                wait_until(lambda: idle(db), 30, "the runs in flight ended")
                stopped = SYSTEM_TIME.monotonic()
                wait_until(lambda: wal_bytes(db) <= 4 * MIB, 10,
                           f"WAL <= 4 MiB 10 s after the load (it is "
                           f"{wal_bytes(db) / MIB:.1f} MiB)", every=0.1)  # fmt: skip
                shrunk = SYSTEM_TIME.monotonic() - stopped
            took = terminate_and_time(everyone)
            tui_out, tui_err = tui_process.communicate(timeout=10)
        finally:
            kill_groups(everyone)
        codes = [p.returncode for p in everyone]
        text = log.read_text(errors="replace")
        assert codes == [0] * len(everyone), (codes, text[-2000:], tui_err[-2000:])
        probe = json.loads(tui_out.strip().splitlines()[-1])
        offered, done = offered_and_done(db, load_from, load_until)
        assert max(took) <= 5.0, took
        assert stats.failures == []
        assert lock_errors(text) == []
        assert lock_errors(tui_out + tui_err) == []
        assert lock_errors("\n".join(stats.output)) == []
        assert probe["errors"] == []
        assert stored_lock_errors(db) == []
        assert integrity(db) == "ok"
        assert leaked_processes([p.pid for p in everyone], born_after) == []
        assert sampler.peak <= 64 * MIB
        cli_p95, tui_p95 = percentile(stats.net, 95), percentile(probe["reads"], 95)
        with capsys.disabled():
            print(
                f"\nD1 {seconds}s: {done}/{offered} tasks done "
                f"({done / (load_until - load_from):.1f}/s); "
                f"WAL peak {sampler.peak / MIB:.1f} MiB, <= 4 MiB {shrunk:.1f} s after "
                f"the load; CLI x{len(stats.net)} own time p50 "
                f"{percentile(stats.net, 50) * 1000:.0f} ms p95 {cli_p95 * 1000:.0f} ms"
                f" (end to end p50 {percentile(stats.total, 50) * 1000:.0f} ms p95 "
                f"{percentile(stats.total, 95) * 1000:.0f} ms, of which imports p50 "
                f"{percentile(stats.imports, 50) * 1000:.0f} ms); TUI x"
                f"{len(probe['reads'])} reads p50 "
                f"{percentile(probe['reads'], 50) * 1000:.0f} ms p95 "
                f"{tui_p95 * 1000:.0f} ms; SIGTERM exits max {max(took):.2f} s; "
                f"CLI by command: {stats.summary()}"
            )
        assert done >= 0.9 * offered, (done, offered)
        assert cli_p95 <= 0.3, sorted(stats.net)[-5:]
        assert tui_p95 <= 0.25, sorted(probe["reads"])[-5:]


def cli_commands(db: Path) -> Iterator[list[str]]:
    """`runs`, `show` and `logs` of the newest run, in turn."""
    while True:
        yield ["runs", "--limit", "50"]
        newest = query(
            db, "SELECT id FROM flow_runs ORDER BY created_at DESC LIMIT 1"
        )  # fmt: skip
        yield ["show", newest[0][0]]
        yield ["logs", newest[0][0]]


@pytest.mark.nightly
@pytest.mark.timeout(300)
def test_d2_a_long_reader_is_reported_and_the_wal_shrinks_once_it_ends(
    tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = tmp_path / "load.py"
    source.write_text(LOAD_FLOWS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    registered = SYSTEM_TIME.timestamp()
    register_file(db, source, registered_at=registered)
    log = tmp_path / "workers.log"
    workers = [start_worker(db, tmp_path, f"w{i}", "--catchup", "skip", "--grace", "3")
               for i in range(2)]  # fmt: skip
    with keep_artifacts_on_failure("D2", "60s", [db, log]):
        try:
            wait_until(lambda: wal_bytes(db) > 0, 30, "writes")
            reader = sqlite3.connect(f"file:{db}?mode=ro", uri=True,
                                     isolation_level=None)  # fmt: skip
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM task_runs").fetchone()  # a snapshot
            with WalSampler(db) as held:
                pause(60)
            reader.execute("COMMIT")
            reader.close()
            released = SYSTEM_TIME.monotonic()
            wait_until(lambda: wal_bytes(db) <= 4 * MIB, 10,
                       f"WAL <= 4 MiB 10 s after the reader (it is "
                       f"{wal_bytes(db) / MIB:.1f} MiB)", every=0.1)  # fmt: skip
            shrunk = SYSTEM_TIME.monotonic() - released
            took = terminate_and_time(workers)
        finally:
            kill_groups(workers)
        text = log.read_text(errors="replace")
        warnings = [line for line in text.splitlines() if "write-ahead log" in line]
        blocked = [line for line in warnings if "not been fully checkpointed" in line]
        assert [w.returncode for w in workers] == [0, 0], text[-2000:]
        # Each kind once per worker at most: the log was not checkpointed for 30 s,
        # and (if it got there) it reached 64 MiB.
        assert 1 <= len(blocked) <= len(workers), warnings
        assert len(warnings) - len(blocked) <= len(workers), warnings
        assert lock_errors(text) == []
        assert stored_lock_errors(db) == []
        assert query(db, "SELECT COUNT(*) FROM flow_runs WHERE state != 'Success'"
                     " AND state NOT IN ('Running', 'Pending')")[0][0] == 0  # fmt: skip
        assert integrity(db) == "ok"
        with capsys.disabled():
            print(f"\nD2: WAL grew to {held.peak / MIB:.1f} MiB under a 60 s reader; "
                  f"{len(warnings)} warning(s): {blocked[0][:160]!r}; back <= 4 MiB "
                  f"{shrunk:.1f} s after it ended; exits {max(took):.2f} s")  # fmt: skip


def fill(conn: sqlite3.Connection, megabytes: int) -> None:
    """Commit `megabytes` MiB of incompressible rows, 256 KiB a transaction."""
    for _ in range(megabytes * 4):
        connection.transaction(
            conn,
            lambda c: c.executemany(
                "INSERT INTO filler (data) VALUES (randomblob(?))", [(16384,)] * 16
            ),
        )


@pytest.mark.reliability
def test_d2_maintenance_truncates_an_idle_log_and_warns_once_about_a_pinned_one(
    db: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The maintenance step on its own: a log nobody restarts is truncated at the
    second look; a log a reader pins is reported once (the 30 s threshold set to 0
    here), and truncated once the reader lets go."""
    writer = connection.connect_writer(db)
    writer.execute("CREATE TABLE filler (data BLOB)")
    caplog.set_level(logging.WARNING, logger="durable.worker.maintenance")
    try:
        fill(writer, 3)
        assert 1 * MIB < wal_bytes(db) <= 4 * MIB
        keeper = WalMaintenance(db)
        report = keeper.step()  # nothing restarts it (nothing writes): truncate
        assert (report.checkpointed, report.complete, report.truncated) == (
            True, True, True,
        )  # fmt: skip
        assert wal_bytes(db) == 0
        fill(writer, 2)  # a fresh log (it restarted), under 8 MiB: the writers cope
        assert keeper.step().checkpointed is False
        assert keeper.step().truncated  # and then nothing restarts it: truncate

        monkeypatch.setattr(maintenance, "WARN_BLOCKED_AFTER", 0.0)
        reader = connection.connect_reader(db)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM filler").fetchone()  # holds a snapshot
        fill(writer, 12)
        assert wal_bytes(db) > maintenance.SHRINK_ABOVE  # it cannot restart
        pinned = [keeper.step() for _ in range(3)]
        assert [(r.complete, r.truncated) for r in pinned] == [(False, False)] * 3
        assert keeper.warnings == 1
        assert "has not been fully checkpointed" in caplog.text
        reader.execute("COMMIT")
        reader.close()
        released = keeper.step()
        assert (released.complete, released.truncated) == (True, True)
        assert wal_bytes(db) == 0
        fill(writer, 1)
        assert integrity(db) == "ok"
    finally:
        writer.close()


@pytest.mark.reliability
@pytest.mark.timeout(60)
def test_d2_a_worker_killed_right_after_asking_for_a_checkpoint_leaves_a_sound_db(
    tmp_path: Path, db: Path
) -> None:
    """Crash point `after_checkpoint_start`: a worker SIGKILLed right after its
    maintenance checkpoint of an idle log; the database stays sound and the next
    worker truncates the log."""
    writer = connection.connect_writer(db)
    try:
        connection.migrate(writer, db)
        writer.execute("CREATE TABLE filler (data BLOB)")
        fill(writer, 2)  # a log no one restarts: the worker checkpoints it
        crashing = start_worker(
            db, tmp_path, "crashing",
            env={"DURABLE_CRASH_AT": "after_checkpoint_start:1"},
        )  # fmt: skip
        try:
            assert crashing.wait(timeout=30) == -9, (
                tmp_path / "workers.log"
            ).read_text()
        finally:
            kill_groups([crashing])
        assert integrity(db) == "ok"
        worker = start_worker(db, tmp_path, "next")
        try:
            wait_until(lambda: wal_bytes(db) == 0, 20, "the next worker's truncation")
        finally:
            terminate_and_time([worker])
            kill_groups([worker])
        assert worker.returncode == 0
        assert integrity(db) == "ok"
    finally:
        writer.close()


# D3 ------------------------------------------------------------------------------------
SOURCES = [Path(durable.__file__).parent, Path(tui.__file__).parent]
STORE = Path(durable.__file__).parent / "store"

CONNECT_ALLOWED = {
    "durable/tasks/sql.py": "the task library's SQLite tasks open the user's own "
    "databases (never durable's), in the user's transaction style",
    "durable/doctor.py": "`durable doctor` opens the file read-only, with a short "
    "timeout, to diagnose a database durable itself may refuse to open",
}
"""Modules outside durable/store/ that may call sqlite3.connect or BEGIN, and why."""

SQL_CALLS = {"execute", "executemany", "executescript", "_fetch", "fetch"}
"""Methods whose first argument is SQL."""
SQL_BUILDERS = {
    "where": "store/rows.py: `col = ?` for column names from the caller's literal keys",
    "run_conditions": "store/browse/queries.py: literal clauses and `?` lists",
    "log_conditions": "store/browse/queries.py: literal clauses, values bound",
    "_summary_sql": "store/registry.py: literal SQL picked by schema version",
    "_columns": "store/scheduling.py: SCHEDULED_RUN_COLUMNS or literal stand-ins",
}
"""Functions reviewed to return SQL built only of durable's literals (values bound)."""
REVIEWED = {
    ("durable/store/connection.py", "f'PRAGMA synchronous={durability.upper()}'"):
    "durability is checked against ('full', 'normal') just before",
}  # fmt: skip
"""Single SQL arguments reviewed by hand, with why they are safe."""
UPPER = re.compile(r"^_?[A-Z][A-Z0-9_]*$")
STR_METHODS = {"format", "join", "replace", "split", "strip", "upper", "lower"}


def modules() -> Iterator[tuple[str, ast.Module]]:
    root = SOURCES[0].parent
    for base in SOURCES:
        for path in sorted(base.rglob("*.py")):
            yield path.relative_to(root).as_posix(), ast.parse(path.read_text())


def is_placeholder(node: ast.expr) -> bool:
    """`"?"`, `", ?"` or a list of those: text with no value in it."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return set(node.value) <= set("?, ")
    if isinstance(node, ast.List | ast.Tuple):
        return all(is_placeholder(e) for e in node.elts)
    return False


class Scope:
    """What each local name of one function is assigned from."""

    def __init__(self, function: ast.AST | None) -> None:
        self.values: dict[str, list[ast.expr]] = {}
        self.params: set[str] = set()
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = function.args
            self.params = {a.arg for a in [*arguments.posonlyargs, *arguments.args,
                                           *arguments.kwonlyargs]}  # fmt: skip
        for node in ast.walk(function) if function is not None else ():
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self.bind(target, node.value)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign) and node.value:
                self.bind(node.target, node.value)
            elif isinstance(node, ast.For | ast.comprehension):
                self.bind(node.target, node.iter)
            elif isinstance(node, ast.NamedExpr):
                self.bind(node.target, node.value)

    def bind(self, target: ast.expr, value: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self.values.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Tuple | ast.List):
            branches = (
                [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
            )
            for branch in branches:
                if isinstance(branch, ast.Tuple) and len(branch.elts) == len(
                    target.elts
                ):
                    for part, element in zip(target.elts, branch.elts, strict=True):
                        self.bind(part, element)
                else:
                    for part in target.elts:
                        self.bind(part, branch)


def is_safe_sql(
    node: ast.expr, scope: Scope, seen: frozenset[str] = frozenset()
) -> bool:
    """Whether `node` can only be SQL text of durable's own (no value in it)."""
    match node:
        case ast.Constant():
            return True
        case ast.JoinedStr(values=values):
            return all(is_safe_sql(v.value, scope, seen) for v in values
                       if isinstance(v, ast.FormattedValue))  # fmt: skip
        case ast.BinOp(op=ast.Add(), left=left, right=right):
            return is_safe_sql(left, scope, seen) and is_safe_sql(right, scope, seen)
        case ast.BinOp(op=ast.Mult(), left=left, right=right):
            return is_placeholder(left) or is_placeholder(right)
        case ast.Tuple() | ast.List() | ast.IfExp():
            parts = (
                [node.body, node.orelse] if isinstance(node, ast.IfExp) else node.elts
            )
            return all(is_safe_sql(p, scope, seen) for p in parts)
        case ast.Await(value=value) | ast.Subscript(value=value):
            return is_safe_sql(value, scope, seen)
        case ast.GeneratorExp(elt=elt) | ast.ListComp(elt=elt):
            return is_safe_sql(elt, scope, seen)
        case ast.Name() | ast.Attribute():
            return is_safe_name(node, scope, seen)
        case ast.Call():
            return is_safe_call(node, scope, seen)
    return False


def is_safe_name(
    node: ast.Name | ast.Attribute, scope: Scope, seen: frozenset[str]
) -> bool:
    """A module constant, or a local assigned only safe SQL."""
    if isinstance(node, ast.Attribute):
        # self._sql: the browse model's `Queries`, built once of literals.
        return bool(UPPER.match(node.attr)) or ast.unparse(node).startswith(
            "self._sql."
        )
    if UPPER.match(node.id) or node.id in seen:
        return True
    values = scope.values.get(node.id, [])
    return bool(values) and all(is_safe_sql(v, scope, seen | {node.id}) for v in values)


def is_safe_call(node: ast.Call, scope: Scope, seen: frozenset[str]) -> bool:
    """A reviewed SQL builder, an int, or a string method on safe SQL."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else ast.unparse(func)
    if name in SQL_BUILDERS or name in ("int", "len"):
        return True
    if isinstance(func, ast.Attribute) and name in STR_METHODS:
        parts = [*node.args, *(k.value for k in node.keywords)]
        return is_safe_sql(func.value, scope, seen) and all(
            is_placeholder(p) or is_safe_sql(p, scope, seen) for p in parts
        )
    return False


def innermost_functions(tree: ast.Module) -> dict[int, ast.AST]:
    """For each node, the innermost function around it (ast.walk goes outside in)."""
    found: dict[int, ast.AST] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                found[id(node)] = function
    return found


def imported_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def unsafe_sql_arguments(path: str, tree: ast.Module) -> list[str]:
    found = []
    functions, modules_ = innermost_functions(tree), imported_names(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS and node.args):  # fmt: skip
            continue
        receiver = node.func.value
        if isinstance(receiver, ast.Name) and receiver.id in modules_:
            continue  # a module's function named execute (executors' `body`)
        function = functions.get(id(node))
        scope, sql = Scope(function), node.args[0]
        name = getattr(function, "name", "")
        if isinstance(sql, ast.Name) and sql.id in scope.params and name in SQL_CALLS:
            continue  # a pass-through wrapper (`_fetch(sql, ...)`): its callers count
        if (path, ast.unparse(sql)) in REVIEWED or is_safe_sql(sql, scope):
            continue
        found.append(f"{path}:{node.lineno} {ast.unparse(sql)[:90]}")
    return found


def connects_and_begins(path: str, tree: ast.Module) -> list[str]:
    """sqlite3.connect calls and BEGIN statements (what only the store may do)."""
    found = []
    direct = {  # `from sqlite3 import connect`
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "sqlite3"
        for alias in node.names
        if alias.name == "connect"
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        call = ast.unparse(node.func)
        if call == "sqlite3.connect" or call in direct:
            found.append(f"{path}:{node.lineno} {call}(...)")
        if isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
            for part in ast.walk(node.args[0]) if node.args else ():
                if (isinstance(part, ast.Constant) and isinstance(part.value, str)
                        and re.match(r"\s*BEGIN\b", part.value, re.IGNORECASE)):  # fmt: skip
                    found.append(f"{path}:{node.lineno} BEGIN")
    return found


def isolation_levels(path: str, tree: ast.Module) -> list[str]:
    """isolation_level set to anything but None (keyword or attribute)."""
    found = []
    for node in ast.walk(tree):
        value: ast.expr | None = None
        if (isinstance(node, ast.keyword) and node.arg == "isolation_level") or (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Attribute) and t.attr == "isolation_level"
                    for t in node.targets)
        ):  # fmt: skip
            value = node.value
        if value is not None and not (
            isinstance(value, ast.Constant) and value.value is None
        ):
            found.append(f"{path}:{value.lineno} {ast.unparse(value)}")
    return found


@pytest.mark.reliability
def test_d3_only_the_store_connects_begins_and_builds_sql_without_values() -> None:
    connects, levels, unsafe = [], [], []
    for path, tree in modules():
        if path in CONNECT_ALLOWED:  # user databases / read-only diagnosis (see above)
            continue
        if not path.startswith("durable/store/"):
            connects += connects_and_begins(path, tree)
        levels += isolation_levels(path, tree)
        unsafe += unsafe_sql_arguments(path, tree)
    assert connects == [], "open connections and transactions in durable/store/ only"
    assert levels == [], "autocommit connections only: isolation_level=None"
    assert unsafe == [], "SQL must be literals or constants; bind values with ?"


@pytest.mark.reliability
def test_d3_the_guard_catches_what_it_is_for() -> None:
    """The checks are not vacuous: each flags a sample of the mistake it guards."""
    bad = ast.parse(
        "import sqlite3\n"
        "def f(conn, name):\n"
        "    conn.execute(f\"SELECT * FROM runs WHERE name = '{name}'\")\n"
        "    conn.execute('SELECT %s' % name)\n"
        "    conn.execute('BEGIN IMMEDIATE')\n"
        "    sqlite3.connect('x.db', isolation_level='DEFERRED')\n"
        "    query = 'SELECT ' + name\n"
        "    conn.execute(query)\n"
        "    marks = ', '.join('?' * len(name))\n"
        "    conn.execute(f'SELECT {COLUMNS} FROM t WHERE id IN ({marks})', ())\n"
    )
    assert len(unsafe_sql_arguments("x.py", bad)) == 3  # not BEGIN, not the last
    assert len(connects_and_begins("x.py", bad)) == 2
    assert len(isolation_levels("x.py", bad)) == 1


@dataclass
class BusyConnection:
    """Stands in for a connection whose BEGIN IMMEDIATE meets a lock `busy` times."""

    busy: int
    begins: int = 0
    in_transaction: bool = False
    statements: list[str] = field(default_factory=list)

    def execute(self, sql: str) -> None:
        self.statements.append(sql)
        if sql == "BEGIN IMMEDIATE":
            self.begins += 1
            if self.begins <= self.busy:
                raise sqlite3.OperationalError("database is locked")
            self.in_transaction = True
        elif sql in ("COMMIT", "ROLLBACK"):
            self.in_transaction = False


@pytest.mark.reliability
@pytest.mark.parametrize("busy", [1, 5, 6, 20])
def test_d3_transaction_retries_busy_at_most_5_times_with_jitter(
    busy: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: list[float] = []

    class Event:
        def wait(self, seconds: float) -> bool:
            waits.append(seconds)
            return False

    monkeypatch.setattr("durable.store.connection.threading.Event", Event)
    conn = BusyConnection(busy)

    def work(conn: object) -> str:
        return "done"

    if busy <= connection.BUSY_RETRIES:
        assert connection.transaction(conn, work) == "done"  # type: ignore[arg-type]
        assert conn.statements[-2:] == ["BEGIN IMMEDIATE", "COMMIT"]
    else:
        with pytest.raises(StoreError, match="locked"):
            connection.transaction(conn, work)  # type: ignore[arg-type]
    retries = min(busy, connection.BUSY_RETRIES)
    assert conn.begins == retries + 1
    assert len(waits) == retries
    for attempt, wait in enumerate(waits, start=1):  # jittered, growing bounds
        assert 0.01 * attempt <= wait <= 0.1 * attempt
    if retries >= 2:
        assert len(set(waits)) > 1  # not one fixed delay


# D4 ------------------------------------------------------------------------------------
COLD_FLOW = """\
from durable import Flow, task


@task
def hello():
    return "hello"


with Flow("cold-start") as flow:
    hello()
"""

COLD_PROBE = """\
import json
import logging
import os
import sys
import threading
import time

import durable.cli  # imported once; the race is on the database, not on imports

handler = logging.StreamHandler(sys.stderr)
handler.setFormatter(logging.Formatter("MIGRATE %(process)d %(message)s"))
migrations = logging.getLogger("durable.store.connection")
migrations.addHandler(handler)
migrations.setLevel(logging.DEBUG)
folder, rounds, flow = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for round_ in range(rounds):
    db, go = f"{folder}/cold{round_}/durable.db", f"{folder}/go{round_}"
    children = []
    for i in range(6):  # six fresh processes (forks of this one, no connection open)
        pid = os.fork()
        if pid == 0:
            err = os.open(f"{folder}/cold{round_}.{i}.err", os.O_WRONLY | os.O_CREAT)
            os.dup2(err, 2)
            while not os.path.exists(go):
                threading.Event().wait(0.001)
            sys.argv = ["durable", "--db", db, "run", flow]
            try:
                durable.cli.main()
            except SystemExit as exit:
                os._exit(exit.code if isinstance(exit.code, int) else 1)
            os._exit(0)
        children.append(pid)
    threading.Event().wait(0.2)  # all six wait on `go`
    open(go, "w").close()
    released = time.monotonic()
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    print(json.dumps({"codes": codes, "took": time.monotonic() - released}),
          flush=True)
"""


@pytest.mark.parametrize(
    "rounds",
    [
        pytest.param(5, id="x5", marks=[pytest.mark.reliability,
                                        pytest.mark.timeout(120)]),
        pytest.param(20, id="x20", marks=[pytest.mark.nightly,
                                          pytest.mark.timeout(400)]),
    ],
)  # fmt: skip
def test_d4_six_processes_starting_on_a_missing_database_migrate_it_once(
    tmp_path: Path, rounds: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Six processes are released at once (forked from one that imported durable,
    as the worker's fork server does, so that the race is on the database and not
    on 0.5 s of imports each), each running `durable run` of a one-task flow on a
    database that does not exist yet."""
    (tmp_path / "cold.py").write_text(COLD_FLOW)
    (tmp_path / "probe.py").write_text(COLD_PROBE)
    for round_ in range(rounds):
        (tmp_path / f"cold{round_}").mkdir()
    probe = subprocess.run(
        [PYTHON, str(tmp_path / "probe.py"), str(tmp_path), str(rounds),
         str(tmp_path / "cold.py")],
        capture_output=True, text=True, cwd=tmp_path, env=durable_env(tmp_path),
        timeout=300, start_new_session=True, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr[-3000:]
    results = [json.loads(line) for line in probe.stdout.splitlines()]
    assert len(results) == rounds
    for round_, result in enumerate(results):
        db = tmp_path / f"cold{round_}" / "durable.db"
        with keep_artifacts_on_failure("D4", round_, [db.parent]):
            errors = "\n".join(
                path.read_text() for path in tmp_path.glob(f"cold{round_}.*.err")
            )
            assert result["codes"] == [0] * 6, errors[-3000:]
            steps = [line.split() for line in errors.splitlines()
                     if line.startswith("MIGRATE ")]  # fmt: skip
            assert len(steps) == SCHEMA_VERSION, steps  # every step once...
            assert len({pid for _, pid, *_ in steps}) == 1  # ...by one process
            assert query(db, "PRAGMA user_version")[0][0] == SCHEMA_VERSION
            ran = query(db, "SELECT COUNT(*), SUM(state = 'Success') FROM flow_runs")
            assert ran == [(6, 6)]
            assert lock_errors(errors) == []
            assert integrity(db) == "ok"
            assert result["took"] <= 5.0, result
    slowest = max(result["took"] for result in results)
    with capsys.disabled():
        print(f"\nD4 x{rounds}: 6 processes on a missing database, migrated once by "
              f"one of them each round, all 6 runs Success; slowest round {slowest:.2f}"
              " s from release to the last exit")  # fmt: skip
