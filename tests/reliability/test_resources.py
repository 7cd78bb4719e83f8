"""Resource faults (RELIABILITY.md 5.5, group E): disk full, I/O errors, read-only and
damaged databases, schema versions, huge results, memory and CPU hogs.

Mapping onto durable (one flow run per process; `durable worker` launches one process
per scheduled run):

- E1b: `DURABLE_TEST_MAX_PAGE_COUNT` (a test-only hook read in `connect_writer`) sets
  `PRAGMA max_page_count` on the run's writer connection: a genuine SQLITE_FULL.
  `durable run` exits 4 (EXIT_DISK_FULL, added for this), `durable resume` finishes.
  Workers: a run process that hits a full disk exits 4; its worker gives the run back
  uncounted (not a crash: three quick relaunches used to mark it Crashed within a
  second) and claims nothing for 30 s; `worker --burst` exits 4.
- E1a (nightly, needs_root): the same on a real tmpfs (32 MiB: the finished flow needs
  ~15) made full by a filler file, which is then deleted.
- E2: RLIMIT_FSIZE on the run process gives SQLITE_IOERR_WRITE: the process fail-stops
  (its checkpoint writer never retries a failed COMMIT); `durable resume` finishes.
- E3: as uid 65534 (a child that calls setuid; root ignores file modes): writing
  commands exit 2 naming the path and the cause, before SQLite touches anything; read
  commands work on a read-only file; a read-only directory without -shm is a clear
  error for both.
- E4: test_doctor's corrupted files (imported) plus garbage in page >= 2: every command
  exits 3 with one line naming the path and `durable doctor` / a backup; the file's
  sha256 is unchanged. The TUI refuses such a file in one line, and a table found
  damaged while it runs shows in its header (Pilot).
- E5: user_version = supported + 1: writing and reading commands (and the TUI) refuse
  with exit 5 ("refuse" is the policy picked for read commands). Older versions and
  the mid_migration crash point are test_process_crash's (A2), not repeated here.
- E6: a 70 MB result goes to a file with bounded memory (nightly: 500 MB); a result too
  large for one row under SQLITE_LIMIT_LENGTH (`DURABLE_TEST_LIMIT_LENGTH`) goes to a
  file whatever the threshold says (it used to fail the whole run with SQLITE_TOOBIG).
- E7 (nightly): a task allocating without limit under RLIMIT_AS fails with MemoryError
  and the run ends cleanly; a busy loop under ProcessExecutor is TimedOut in time.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from durable.cli.base import EXIT_DISK_FULL, EXIT_SCHEMA, EXIT_STORE, EXIT_USAGE
from durable.store.schema import SCHEMA_VERSION
from tests.cli.test_cli import durable
from tests.reliability import harness
from tests.reliability.invariants import check_invariants
from tests.test_doctor import CORRUPTIONS

TASKS = 100
RESULT_BYTES = 100 * 1024

RESULTS_FLOW = '''\
"""100 tasks, each returning a 100 KiB bytes value; bodies leave side-log lines."""
import hashlib
import os

from durable import Flow, context, task

SIZE = int(os.environ.get("E_RESULT_BYTES", "102400"))


def side(event: str) -> None:
    path = os.environ.get("REL_SIDE_LOG")
    if path:
        line = (f"{event} {context.flow_run_id} {context.task_slug} "
                f"{context.task_run_id} {context.attempt} {os.getpid()}\\n")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)


def payload(i: int) -> bytes:
    block = hashlib.sha256(f"result {i}".encode()).digest()
    return (block * (SIZE // len(block) + 1))[:SIZE]


@task
def produce(i: int) -> bytes:
    side("start")
    value = payload(i)
    side("end")
    return value


with Flow("results") as flow:
    for index in range(100):
        produce(index, task_args={"slug": f"r{index:03d}"})
'''


def expected_payload(i: int, size: int = RESULT_BYTES) -> bytes:
    """Task i's result, computed apart from the flow file."""
    block = hashlib.sha256(f"result {i}".encode()).digest()
    return (block * (size // len(block) + 1))[:size]


# Helpers ----------------------------------------------------------------------------
def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli(
    db: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
    limit: tuple[str, int] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `durable --db DB ARGS` in a process (group) of its own and wait for it;
    `limit` = (RLIMIT name, soft limit) for that process."""
    command = harness.durable_command(db, *args)
    return subprocess.run(
        limited(command, limit) if limit else command, env=harness.durable_env(env),
        capture_output=True, text=True, timeout=timeout, start_new_session=True,
        cwd=harness.REPO, check=False,
    )  # fmt: skip


LIMITED = """\
import os, resource, sys
which, soft = getattr(resource, sys.argv[1]), int(sys.argv[2])
resource.setrlimit(which, (soft, resource.getrlimit(which)[1]))
os.execv(sys.argv[3], sys.argv[3:])
"""


def limited(command: list[str], limit: tuple[str, int]) -> list[str]:
    """`command` run under a resource limit: a small Python sets it, then execs."""
    return [sys.executable, "-c", LIMITED, limit[0], str(limit[1]), *command]


def errors(stderr: str) -> list[str]:
    """The lines a command printed as its error (what a user reads)."""
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def one_clean_error(proc: subprocess.CompletedProcess[str]) -> str:
    """Assert the command failed with exactly one `Error:` line and no traceback."""
    found = errors(proc.stderr)
    assert len(found) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    return found[0]


def run_id_of(db: Path) -> str:
    rows = harness.query(db, "SELECT id FROM flow_runs")
    assert len(rows) == 1, rows
    return str(rows[0][0])


def task_states(db: Path) -> dict[str, int]:
    rows = harness.query(db, "SELECT state, COUNT(*) FROM task_runs GROUP BY state")
    return {str(state): int(n) for state, n in rows}


def success_without_result(db: Path) -> int:
    rows = harness.query(
        db,
        "SELECT COUNT(*) FROM task_runs t WHERE t.state = 'Success' AND NOT EXISTS"
        " (SELECT 1 FROM results r WHERE r.task_run_id = t.id)",
    )
    return int(rows[0][0])


def integrity(db: Path) -> str:
    return str(harness.query(db, "PRAGMA integrity_check")[0][0])


def check_all_results(db: Path, run_id: str, size: int = RESULT_BYTES) -> None:
    """100/100 results, each the right bytes; one result row per task run."""
    results = harness.read_results(db, run_id)
    assert sorted(results) == [f"r{i:03d}" for i in range(TASKS)]
    wrong = [k for k, v in results.items() if v != expected_payload(int(k[1:]), size)]
    assert wrong == []
    rows = harness.query(
        db,
        "SELECT COUNT(*), COUNT(DISTINCT r.task_run_id) FROM results r"
        " JOIN task_runs t ON t.id = r.task_run_id WHERE t.flow_run_id = ?",
        run_id,
    )
    assert rows[0] == (TASKS, TASKS)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_of(directory: Path) -> dict[str, str]:
    """Every file of a directory (recursively) with its sha256: 'nothing was written'."""
    return {
        str(p.relative_to(directory)): sha(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def checkpointed(db: Path) -> None:
    """Fold the WAL into the file and remove -wal and -shm (the last connection)."""
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for suffix in ("-wal", "-shm"):
        assert not db.with_name(db.name + suffix).exists()


# E1b: disk full, without privileges --------------------------------------------------
@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e1b_disk_full_fails_cleanly_and_resume_finishes(tmp_path: Path) -> None:
    db, side = tmp_path / "full.db", tmp_path / "side.log"
    flow = write(tmp_path / "results_flow.py", RESULTS_FLOW)
    full = {"DURABLE_TEST_MAX_PAGE_COUNT": "1000", "REL_SIDE_LOG": str(side)}

    started = time.monotonic()
    proc = cli(db, "run", str(flow), env=full)
    failed_after = time.monotonic() - started

    run_id = run_id_of(db)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr[-3000:]
    message = one_clean_error(proc)
    assert "database or disk is full" in message
    assert f"durable resume {run_id}" in message
    # Logging went on after the writer had failed (its own error line at least), and
    # the process still ended on its own with the disk-full exit code.
    assert "checkpoint write failed: database or disk is full" in proc.stderr
    states = task_states(db)
    done_before = states.get("Success", 0)
    assert 0 < done_before < TASKS, states  # it failed mid-run, not before or after
    assert success_without_result(db) == 0
    assert integrity(db) == "ok"
    assert check_invariants(db) == []
    done = {
        str(slug)
        for (slug,) in harness.query(
            db, "SELECT task_slug FROM task_runs WHERE state = 'Success'"
        )
    }

    started = time.monotonic()
    resumed = cli(db, "resume", run_id, env={"REL_SIDE_LOG": str(side)})
    resume_seconds = time.monotonic() - started

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resume_seconds <= 30
    assert task_states(db) == {"Success": TASKS}
    check_all_results(db, run_id)
    assert check_invariants(db, settled=True) == []
    starts = harness.count_starts(harness.read_executions(side))
    # Tasks whose Success had committed before the fault did not run again; the rest
    # ran at most twice (once cut off by the full disk, once on resume).
    assert {slug: starts[slug.removesuffix("-1")] for slug in done} == dict.fromkeys(
        done, 1
    )
    assert len(starts) == TASKS
    assert max(starts.values()) <= 2
    print(
        f"E1b: failed after {failed_after:.2f} s with {done_before}/{TASKS} done, "
        f"resume took {resume_seconds:.2f} s, executions {sum(starts.values())}"
    )


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e1b_worker_gives_a_run_back_on_a_full_disk_without_counting_a_crash(
    tmp_path: Path,
) -> None:
    db = tmp_path / "worker.db"
    flow = write(tmp_path / "results_flow.py", RESULTS_FLOW)
    assert cli(db, "register", str(flow)).returncode == 0
    scheduled = harness.trigger(db, "results")
    pages = int(harness.query(db, "PRAGMA page_count")[0][0])
    full = {"DURABLE_TEST_MAX_PAGE_COUNT": str(pages + 300)}

    started = time.monotonic()
    proc = cli(db, "worker", "--burst", env=full)
    elapsed = time.monotonic() - started

    assert proc.returncode == EXIT_DISK_FULL, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    # The run's process and then the worker each say so in one line (the run
    # process's output is the worker's).
    run_error, worker_error = errors(proc.stderr)
    assert "database or disk is full" in run_error
    assert "the disk is full" in worker_error
    assert "given back" in worker_error
    row = harness.scheduled_run(db, scheduled)
    assert row["status"] == "Scheduled"  # given back, not Crashed
    assert row["crashes"] == 0
    # One launch only: the worker backs off instead of relaunching into a full disk.
    assert proc.stderr.count("checkpoint write failed") == 1
    assert elapsed < 30
    assert success_without_result(db) == 0
    assert check_invariants(db) == []

    again = cli(db, "worker", "--burst")

    assert again.returncode == 0, again.stderr[-3000:]
    row = harness.scheduled_run(db, scheduled)
    assert (row["status"], row["crashes"]) == ("Finished", 0)
    check_all_results(db, scheduled)
    assert check_invariants(db, settled=True) == []


# E1a: a real full tmpfs (nightly, root) ----------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 32 MiB tmpfs mounted at tmp_path/fs (skips unless root and mount works).

    RELIABILITY.md says 8 MiB, but the finished flow needs ~15 MiB (10 MiB of results
    plus the WAL): a filler file makes it full, and removing it makes room."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None:
        pytest.skip("no mount/umount command")
    point = tmp_path / "fs"
    point.mkdir()
    done = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=32m,mode=0700", "tmpfs", str(point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run([umount, "-l", str(point)], check=False)


@pytest.mark.nightly
@pytest.mark.needs_root
@pytest.mark.timeout(180)
def test_e1a_real_full_tmpfs_fails_cleanly_and_resume_finishes(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    db = small_tmpfs / "full.db"
    flow = write(tmp_path / "results_flow.py", RESULTS_FLOW)
    filler = small_tmpfs / "filler"
    stat = os.statvfs(small_tmpfs)
    free = stat.f_bavail * stat.f_frsize
    with filler.open("wb") as out:  # leave ~3 MiB: about 28 results fit
        out.write(b"\0" * max(free - 3 * 1024 * 1024, 0))

    proc = cli(db, "run", str(flow))

    run_id = run_id_of(db)
    assert proc.returncode == EXIT_DISK_FULL, proc.stderr[-3000:]
    assert "database or disk is full" in one_clean_error(proc)
    # How many results fit before the disk filled depends on how many the writer had
    # grouped into the failing commit (a commit of 3 MiB of results fails whole): any
    # number short of all of them, none of them Success without its result.
    assert task_states(db).get("Success", 0) < TASKS
    assert success_without_result(db) == 0
    assert integrity(db) == "ok"

    filler.unlink()
    started = time.monotonic()
    resumed = cli(db, "resume", run_id)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert time.monotonic() - started <= 30
    check_all_results(db, run_id)
    assert check_invariants(db, settled=True) == []


# E2: I/O error -----------------------------------------------------------------------
FSIZE_LIMIT = 3 * 1024 * 1024
"""Writes past 3 MiB fail with EFBIG (Python ignores SIGXFSZ)."""


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e2_io_error_fail_stops_and_resume_finishes(tmp_path: Path) -> None:
    db = tmp_path / "io.db"
    flow = write(tmp_path / "results_flow.py", RESULTS_FLOW)
    command = harness.durable_command(db, "run", str(flow))
    process = subprocess.Popen(
        limited(command, ("RLIMIT_FSIZE", FSIZE_LIMIT)), env=harness.durable_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True, cwd=harness.REPO,
    )  # fmt: skip
    assert process.stderr is not None
    lines, failed_at = [], None
    with process.stderr:
        for line in process.stderr:  # to EOF: the process has closed it (it exited)
            lines.append(line)
            if failed_at is None and "checkpoint write failed" in line:
                failed_at = time.monotonic()
    code = process.wait(timeout=30)
    ended_at = time.monotonic()
    stderr = "".join(lines)

    assert failed_at is not None, stderr[-3000:]
    stop_seconds = ended_at - failed_at
    assert code == EXIT_STORE, stderr[-3000:]
    assert "disk I/O error" in one_clean_error(
        subprocess.CompletedProcess([], code, "", stderr)
    )
    assert stderr.count("checkpoint write failed") == 1  # COMMIT never retried
    assert stop_seconds <= 2.0  # fail-stop: RELIABILITY says 1 s; margin for load
    assert integrity(db) == "ok"
    assert success_without_result(db) == 0
    assert check_invariants(db) == []
    run_id = run_id_of(db)

    resumed = cli(db, "resume", run_id)

    assert resumed.returncode == 0, resumed.stderr[-3000:]
    check_all_results(db, run_id)
    assert check_invariants(db, settled=True) == []
    print(f"E2: exited {stop_seconds * 1000:.0f} ms after the failed write")


# E3: read-only database and directory ------------------------------------------------
NOBODY = 65534

SMALL_FLOW = """\
from durable import Flow, task


@task
def one() -> int:
    return 1


with Flow("small") as flow:
    one()
"""


PROBE = (
    "import sys, durable.cli.running, durable.worker, durable.engine.flow_runner,"
    " durable.store.browse; print('%d.%d' % sys.version_info[:2])"
)
"""Checks the interpreter works for uid 65534, and compiles what the tests run."""


class Unprivileged:
    """Runs `python -m durable` as uid 65534 (from root), or as this user otherwise.

    Root ignores file modes, so as root the child drops to uid/gid 65534 before exec.
    That interpreter must be one uid 65534 can execute: this one, else a `python3` of
    the same version given durable's and its dependencies' paths.
    """

    def __init__(self, python: str, env: dict[str, str], as_nobody: bool) -> None:
        self.python, self.env, self.as_nobody = python, env, as_nobody

    def command(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        """Run `args` as the unprivileged user (setuid/setgid in the child)."""
        ids: dict[str, Any] = (
            {"user": NOBODY, "group": NOBODY, "extra_groups": []}
            if self.as_nobody
            else {}
        )
        return subprocess.run(
            args, env=self.env, cwd=cwd, capture_output=True, text=True, timeout=60,
            start_new_session=True, check=False, **ids,
        )  # fmt: skip

    def run(self, db: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return self.command([self.python, "-m", "durable", "--db", str(db), *args], cwd)

    @classmethod
    def find(cls, home: Path) -> Unprivileged:
        """Find a way to run durable unprivileged, with a bytecode cache of its own in
        `home` (compiled once, by the probe); skip the test if there is none."""
        paths = [str(harness.REPO)]
        for key in ("purelib", "platlib"):
            if sysconfig.get_paths()[key] not in paths:
                paths.append(sysconfig.get_paths()[key])
        pycache = home / "pycache"
        pycache.mkdir()
        give_to_nobody(pycache)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "PYTHONPATH": os.pathsep.join(paths),
            "PYTHONPYCACHEPREFIX": str(pycache),
            "DURABLE_LOG_LEVEL": "WARNING",
            harness.TOKEN_ENV: harness.PROCESS_TOKEN,
        }
        if os.geteuid() != 0:
            return cls(sys.executable, env, as_nobody=False)
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        candidates = [sys.executable, shutil.which(f"python{version}"),
                      shutil.which("python3"), "/usr/bin/python3"]  # fmt: skip
        tried = []
        for python in dict.fromkeys(c for c in candidates if c):
            runner = cls(python, env, as_nobody=True)
            try:
                probe = runner.command([python, "-c", PROBE], home)
            except OSError as exc:
                tried.append(f"{python}: {exc}")
                continue
            if probe.returncode == 0 and probe.stdout.strip() == version:
                return runner
            tried.append(f"{python}: {probe.stderr.strip()[-200:] or probe.stdout}")
        pytest.skip(f"no Python {version} that uid {NOBODY} can run: {tried}")


@pytest.fixture(scope="module")
def user_home() -> Iterator[Path]:
    """A directory every user can enter (pytest's tmp_path is root's alone), for the
    module's tests: the unprivileged runner's home and bytecode cache."""
    root = Path(tempfile.mkdtemp(prefix="durable-e3-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for path in [root, *root.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def user(user_home: Path) -> Unprivileged:
    """How to run durable as uid 65534 (or as this user when not root)."""
    return Unprivileged.find(user_home)


@pytest.fixture
def shared_dir(user_home: Path, tmp_path: Path) -> Path:
    """A directory of the test, under the module's world-enterable one."""
    path = user_home / tmp_path.name
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


def give_to_nobody(path: Path) -> None:
    """Make `path` the test user's own (uid 65534 when running as root)."""
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)


def readonly_setup(shared: Path, kind: str) -> tuple[Path, Path, str]:
    """A finished run's database, checkpointed (no -wal, no -shm), made read-only for
    the test user: the file (`file`) or its directory (`directory`)."""
    data = shared / "data"
    data.mkdir()
    flow = write(shared / "small_flow.py", SMALL_FLOW)
    flow.chmod(0o644)
    db = data / "ro.db"
    done = cli(db, "run", str(flow))
    assert done.returncode == 0, done.stderr[-2000:]
    run_id = run_id_of(db)
    checkpointed(db)
    if kind == "file":
        give_to_nobody(data)  # the directory is theirs: -wal/-shm could be made
        data.chmod(0o755)
        db.chmod(0o444)  # the file is not
    else:
        give_to_nobody(db)
        db.chmod(0o600)  # the file is theirs
        data.chmod(0o555)  # the directory is not
    return db, flow, run_id


@pytest.mark.reliability
@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", ["file", "directory"])
def test_e3_read_only_database_refused_cleanly_by_writing_commands(
    shared_dir: Path, user: Unprivileged, kind: str
) -> None:
    db, flow, run_id = readonly_setup(shared_dir, kind)
    before = files_of(db.parent)

    for command in (["run", str(flow)], ["worker", "--burst"], ["resume", run_id]):
        proc = user.run(db, *command, cwd=shared_dir)

        assert proc.returncode == EXIT_USAGE, (command, proc.stderr[-2000:])
        message = one_clean_error(proc)
        assert repr(str(db)) in message
        if kind == "file":
            assert "the file is read-only" in message
        else:
            assert f"its directory {str(db.parent)!r} is read-only" in message
            assert "read-only directory, cannot open" in message
        assert files_of(db.parent) == before, command  # nothing written, or created


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e3_read_commands_work_on_a_read_only_file(
    shared_dir: Path, user: Unprivileged
) -> None:
    db, _, run_id = readonly_setup(shared_dir, "file")
    before = sha(db)

    runs = user.run(db, "runs", cwd=shared_dir)
    show = user.run(db, "show", run_id, cwd=shared_dir)

    assert runs.returncode == 0, runs.stderr[-2000:]
    assert run_id in runs.stdout
    assert show.returncode == 0, show.stderr[-2000:]
    assert "one" in show.stdout
    assert sha(db) == before


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e3_read_only_directory_without_shm_is_a_clear_error_for_readers(
    shared_dir: Path, user: Unprivileged
) -> None:
    db, _, _ = readonly_setup(shared_dir, "directory")
    before = files_of(db.parent)

    proc = user.run(db, "runs", cwd=shared_dir)

    assert proc.returncode == EXIT_USAGE, proc.stderr[-2000:]
    message = one_clean_error(proc)
    assert f"Cannot read database {str(db)!r}" in message
    assert "ro.db-shm" in message
    assert "read-only directory, cannot open" in message
    assert files_of(db.parent) == before


# E4: corrupted databases -------------------------------------------------------------
def garbage_in_pages(data: bytes) -> bytes:
    """The fifth fixture (test_doctor builds it inline): every page's b-tree header
    after page 1 overwritten, so the header reads fine and every table is damaged."""
    page = int.from_bytes(data[16:18], "big") or 65536
    damaged = bytearray(data)
    for start in range(page, len(damaged), page):
        damaged[start : start + 12] = os.urandom(12)
    return bytes(damaged)


FIXTURES: dict[str, Callable[[bytes], bytes]] = {
    **CORRUPTIONS,
    "garbage in page >= 2": garbage_in_pages,
}


@pytest.fixture(scope="module")
def healthy_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A finished 40-task run (several pages), checkpointed into one file."""
    root = tmp_path_factory.mktemp("e4")
    flow = write(root / "wide.py", textwrap.dedent("""\
        from durable import Flow, task


        @task
        def one(i: int) -> int:
            return i


        with Flow("wide") as flow:
            for i in range(40):
                one(i)
        """))  # fmt: skip
    db = root / "healthy.db"
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 0
    checkpointed(db)
    return db, flow, "r1"


@pytest.mark.reliability
@pytest.mark.parametrize("damage", list(FIXTURES))
def test_e4_a_damaged_database_is_refused_by_every_command_and_left_as_it_was(
    tmp_path: Path, healthy_db: tuple[Path, Path, str], damage: str
) -> None:
    source, flow, run_id = healthy_db
    db = tmp_path / "damaged.db"
    db.write_bytes(FIXTURES[damage](source.read_bytes()))
    before = sha(db)

    for command in (
        ["run", str(flow)],
        ["resume", run_id],
        ["worker", "--burst"],
        ["runs"],
        ["show", run_id],
        ["tui"],
    ):
        result = durable("--db", db, *command)

        assert result.exit_code == EXIT_STORE, (command, result.output)
        lines = [line for line in result.output.splitlines() if "Error" in line]
        assert len(lines) == 1, result.output
        assert lines[0].startswith("Error: ")
        assert repr(str(db)) in lines[0]
        assert "durable --db" in lines[0]
        assert "doctor" in lines[0]
        assert "restore it from a backup" in lines[0]
        assert "Traceback" not in result.output
        assert sha(db) == before, command
    # A reader may have made an empty -wal and an -shm beside it; nothing was logged.
    beside = {p.name: p.stat().st_size for p in tmp_path.iterdir() if p != db}
    assert set(beside) <= {"damaged.db-wal", "damaged.db-shm"}
    assert beside.get("damaged.db-wal", 0) == 0


@pytest.mark.reliability
async def test_e4_tui_shows_a_table_found_damaged_in_its_header(
    tmp_path: Path, healthy_db: tuple[Path, Path, str]
) -> None:
    from tui.app import DurableApp

    db = tmp_path / "damaged.db"
    shutil.copyfile(healthy_db[0], db)
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        root = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'flow_runs'"
        ).fetchone()[0]
        page = conn.execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    start = (root - 1) * page
    data[start : start + 12] = b"\xff" * 12  # flow_runs' root page: not a b-tree page
    db.write_bytes(bytes(data))
    before = sha(db)

    app = DurableApp(db, read_only=True, refresh=0.2)  # the header reads fine
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 10
        while "damaged" not in str(app.sub_title) and time.monotonic() < deadline:
            await pilot.pause(0.05)
        title = str(app.sub_title)

    assert "DB error" in title, title
    assert "damaged" in title
    assert "doctor" in title
    assert sha(db) == before


# E5: schema version ------------------------------------------------------------------
@pytest.mark.reliability
def test_e5_a_newer_schema_is_refused_by_every_command(
    tmp_path: Path, healthy_db: tuple[Path, Path, str]
) -> None:
    source, flow, run_id = healthy_db
    db = tmp_path / "newer.db"
    shutil.copyfile(source, db)
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")  # one file: the bytes to compare
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = files_of(tmp_path)

    for command in (
        ["run", str(flow)],
        ["worker", "--burst"],
        ["resume", run_id],
        ["runs"],  # read commands refuse too (the policy picked for E5)
        ["show", run_id],
        ["tui"],
    ):
        result = durable("--db", db, *command)

        assert result.exit_code == EXIT_SCHEMA, (command, result.output)
        assert "written by a newer durable" in result.output
        assert f"schema version {SCHEMA_VERSION + 1}" in result.output
        assert "Traceback" not in result.output
        assert files_of(tmp_path) == before, command


# E6: huge results --------------------------------------------------------------------
HUGE_DRIVER = '''\
"""Run one task returning SIZE bytes; print peak RSS growth and what was measured."""
import hashlib
import json
import sys

import psutil

from durable import Flow, task

SIZE = int(sys.argv[2])


@task
def huge() -> bytes:
    block = hashlib.sha256(b"huge").digest()
    return block * (SIZE // len(block))


with Flow("huge") as flow:
    huge()

def high_water_mark() -> int:
    """Peak RSS since the last reset (VmHWM), in bytes."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


process = psutil.Process()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # reset the peak RSS to the current RSS
baseline = process.memory_info().rss
state = flow.run(db=sys.argv[1], run_id="huge")
print(json.dumps({
    "ok": state.is_successful(),
    "message": str(next(iter(state.result.values())).message),
    "baseline_rss": baseline,
    "peak_growth": high_water_mark() - baseline,
}))
'''


def huge_result(tmp_path: Path, size: int, env: Mapping[str, str]) -> dict[str, Any]:
    """Run the one-task flow in a child; return its measurements and the files' sizes."""
    driver = write(tmp_path / "huge_driver.py", HUGE_DRIVER)
    db = tmp_path / "huge.db"
    proc = subprocess.run(
        [sys.executable, str(driver), str(db), str(size)],
        env=harness.durable_env(env), capture_output=True, text=True, timeout=600,
        start_new_session=True, cwd=harness.REPO, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    measured: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    rows = harness.query(
        db, "SELECT r.serializer, length(r.value) FROM results r"
        " JOIN task_runs t ON t.id = r.task_run_id WHERE t.task_slug = 'huge-1'",
    )  # fmt: skip
    measured["rows"] = rows
    measured["db_bytes"] = db.stat().st_size
    wal = db.with_name(db.name + "-wal")
    measured["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
    files = list((tmp_path / "huge.db.results").glob("*"))
    measured["file_bytes"] = [f.stat().st_size for f in files]
    value = harness.read_results(db, "huge")["huge-1"]
    block = hashlib.sha256(b"huge").digest()
    measured["intact"] = value == block * (size // len(block))
    assert check_invariants(db, settled=True) == []
    return measured


def check_huge(measured: dict[str, Any], size: int) -> None:
    assert measured["ok"], measured["message"]
    assert measured["intact"]
    assert [serializer for serializer, _ in measured["rows"]] == ["file:pickle"]
    assert len(measured["file_bytes"]) == 1
    assert size <= measured["file_bytes"][0] <= size + 1024
    assert measured["db_bytes"] <= 1024 * 1024  # the row names the file: no blob
    assert measured["wal_bytes"] <= 64 * 1024 * 1024
    assert measured["peak_growth"] <= 2.5 * size, measured
    print(
        f"E6 {size / 1e6:.0f} MB: peak RSS growth {measured['peak_growth'] / 1e6:.0f} MB "
        f"({measured['peak_growth'] / size:.2f}x), db {measured['db_bytes']} B, "
        f"wal {measured['wal_bytes']} B"
    )


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e6_a_70_mb_result_goes_to_a_file_with_bounded_memory(tmp_path: Path) -> None:
    size = 70 * 1000 * 1000
    check_huge(huge_result(tmp_path, size, {}), size)


@pytest.mark.nightly
@pytest.mark.timeout(600)
def test_e6_a_500_mb_result_goes_to_a_file_with_bounded_memory(tmp_path: Path) -> None:
    size = 500 * 1000 * 1000
    check_huge(huge_result(tmp_path, size, {}), size)


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_e6_a_result_over_sqlite_length_limit_goes_to_a_file_not_toobig(
    tmp_path: Path,
) -> None:
    # The threshold asks for inline results up to 1 GiB; SQLite's limit for one value
    # is 10 MB here: the 12 MB result cannot be a row. It used to fail the whole run
    # with SQLITE_TOOBIG; now it goes to a file, as an over-threshold result does.
    size = 12 * 1000 * 1000
    env = {"DURABLE_RESULT_FILE_THRESHOLD": "1GiB",
           "DURABLE_TEST_LIMIT_LENGTH": str(10 * 1000 * 1000)}  # fmt: skip
    check_huge(huge_result(tmp_path, size, env), size)


# E7: memory and CPU hogs (nightly) ---------------------------------------------------
HOG_FLOW = """\
import threading
import time
from datetime import timedelta

from durable import Flow, task
from durable.executors import ProcessExecutor


@task
def fine() -> int:
    return 1


@task
def hog() -> int:
    chunks = []
    while True:
        chunks.append(bytearray(64 * 1024 * 1024))


with Flow("hog") as hog_flow:
    fine()
    hog()


@task(timeout=timedelta(seconds=2))
def spin() -> int:
    while True:
        pass


with Flow("spin", executor=ProcessExecutor(1)) as spin_flow:
    spin()
"""


@pytest.mark.nightly
@pytest.mark.timeout(120)
def test_e7_unbounded_allocation_under_rlimit_as_fails_the_task_cleanly(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hog.db"
    flow = write(tmp_path / "hog_flow.py", HOG_FLOW)

    proc = cli(db, "run", f"{flow}:hog", limit=("RLIMIT_AS", 1 << 30), timeout=90)

    # RLIMIT_AS makes allocation fail with MemoryError rather than kill the process,
    # so the task fails and the run ends Failed; a kernel OOM kill (SIGKILL) would be a
    # crash instead, which `durable worker` caps (A4's poison-pill path).
    assert proc.returncode in (1, -9), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    rows = dict(harness.query(db, "SELECT task_slug, state FROM task_runs"))
    if proc.returncode == 1:  # the process survived: MemoryError failed the task
        assert rows == {"fine-1": "Success", "hog-1": "Failed"}
        message = harness.query(
            db, "SELECT state_message FROM task_runs WHERE task_slug = 'hog-1'"
        )[0][0]
        assert "MemoryError" in message
    assert integrity(db) == "ok"
    assert check_invariants(db) == []


@pytest.mark.nightly
@pytest.mark.timeout(120)
def test_e7_a_busy_loop_under_process_executor_times_out_in_time(
    tmp_path: Path,
) -> None:
    db = tmp_path / "spin.db"
    flow = write(tmp_path / "hog_flow.py", HOG_FLOW)

    started = time.monotonic()
    proc = cli(db, "run", f"{flow}:spin", timeout=90)
    elapsed = time.monotonic() - started

    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = dict(harness.query(db, "SELECT task_slug, state FROM task_runs"))
    assert rows == {"spin-1": "TimedOut"}
    assert elapsed <= 2 + 2 + 3  # timeout + 2 s, plus a process's start-up and exit
    assert check_invariants(db, settled=True) == []
    print(f"E7: busy loop TimedOut; the run took {elapsed:.2f} s (timeout 2 s)")
