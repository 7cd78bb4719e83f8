"""Security tests: RELIABILITY.md 5.7 (G1-G6) and the trust model of 4.6.

- G1 permissions: a new state directory is 0700 and the database, its -wal, -shm and
  result files 0600 under umask 022 and 000, checked with `os.stat` in a forked child
  running as `nobody` (as root; a non-root user runs the same child as itself). A writer
  refuses a database (or -wal) that group or others can write, or a world-writable
  directory without the sticky bit: exit 2 unless `--allow-insecure-perms` or
  `DURABLE_ALLOW_INSECURE_PERMS=1`. Readers are not refused: they trust nothing.
- G2 secrets: `durable.Secret` (Prefect 1's `PrefectSecret`/`EnvVarSecret`) reads
  `$DURABLE_SECRET_<NAME>` and is never stored. A flow prints, logs and raises a secret,
  fails once and succeeds: 0 occurrences in the database, its -wal (kept by a connection
  held open), the output of every process (`run`, `show`, `logs`, `runs`, `flows`) and
  SVG screenshots of the TUI's screens. The same flow with the value as a plain
  `Parameter` leaks it in each of those places: the oracle sees leaks. Bodies run by a
  `process` executor redact it too. A resume without the secret fails before anything
  runs; results (inline, file, cache) holding a secret are refused, and so is a value
  too short to mask. Durable writes no log files of its own: the processes' output is
  the log.
- G3 pickle safety: results, parameters and cache values replaced with a pickle whose
  `__reduce__` creates a sentinel file: `runs`, `show`, `logs`, `flows`, `doctor` and the
  TUI (Runs, Run detail with its Params/Result tab, Task run) create 0 sentinels. No
  command shows a result value, so none needs `--unsafe-unpickle`; HMAC signing is not
  built (optional in RELIABILITY.md). `durable flows` unpickles a registered *schedule*
  to compute the next start, as a worker does to run it: docs/secrets.md says so.
- G4 shell injection: `ShellTask` given ten hostile strings as arguments, without a shell,
  with `shell=True` and with a helper script: 0 sentinel files, the probe's argv equals
  the strings, and the NUL one fails the task with a clear error.
- G5 terminal and markup injection: escape sequences and Textual markup in flow, task,
  run, parameter, tag and log text: 0 ESC/BEL bytes in the CLI's output (it colours
  only a terminal, and honours NO_COLOR: the equivalent of RELIABILITY's `--color`), and
  in the TUI no escape sequence reaches a screen, the literal text is shown (not markup)
  and clicking it does not quit.
- G6 hostile database (nightly): a 1 GB row, a table replaced by a view that recurses
  forever, `user_version=-1`: `durable runs` and `durable doctor` end within 5 s under
  200 MB of RSS, with a one-line error or a report.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from rich.text import Text
from textual.widgets import Static

from durable import Flow, Parameter, Secret, redaction, task
from durable.engine.flow_runner import run_flow_async
from durable.errors import (
    ConfigurationError,
    InsecurePermissionsError,
    SerializationError,
)
from durable.states import Failed, State
from durable.store import Store
from durable.tasks.shell import ShellTask
from tests.reliability import harness
from tui.app import DurableApp
from tui.screens import RunDetailScreen, TaskRunScreen
from tui.widgets import FollowLog, VimTable

NOBODY = 65534
SIZE = (200, 50)
ESCAPES = (b"\x1b", b"\x07", b"\xc2\x9b")  # ESC, BEL, and CSI (U+009B) as UTF-8
HOSTILE = (
    "\x1b[2J",
    "\x1b]0;pwned\x07",
    "\x1b]52;c;Zm9v\x07",
    "[@click=app.quit]click[/]",
    "[link=file:///etc/passwd]x[/]",
)
EVIL = "".join(HOSTILE)
MARKUP = "[@click=app.quit]click[/]"


# Helpers ---------------------------------------------------------------------------------
def cli(
    db: Path, *args: str, env: Mapping[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    """Run `durable --db DB ARGS` in its own process group; wait for it."""
    return subprocess.run(
        harness.durable_command(db, *args), env=harness.durable_env(env),
        capture_output=True, timeout=timeout, start_new_session=True, cwd=db.parent,
        check=False,
    )  # fmt: skip


def output(done: subprocess.CompletedProcess[bytes]) -> bytes:
    return done.stdout + done.stderr


def run_all(
    db: Path, commands: Sequence[Sequence[str]]
) -> dict[str, subprocess.CompletedProcess[bytes]]:
    """Run several read commands at once; their results by command line."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {" ".join(c): pool.submit(cli, db, *c) for c in commands}
        return {line: future.result() for line, future in futures.items()}


def write_flow(directory: Path, source: str, name: str = "flow.py") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def only_run(db: Path) -> str:
    (row,) = harness.query(db, "SELECT id FROM flow_runs")
    return str(row[0])


async def settle(app: DurableApp, pilot: Any) -> None:
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


Poke = Callable[[DurableApp, Any, str], Awaitable[None]]
"""Called at each stop of a `tour` with the app, its pilot and the stop's name."""
TABS = ("tasks-tab", "logs", "params", "events")


async def tour(
    db: Path, stops: Collection[str], *, task_row: int = 0, poke: Poke | None = None
) -> dict[str, str]:
    """SVG screenshots of the TUI on `db`'s newest run, by stop: `runs`, the Run detail
    tabs (`tasks-tab`, `logs`, `params`, `events`), `task` (the Task run of the tasks
    table's row `task_row`) and `logs-area` (the Logs area, key 5)."""
    pictures: dict[str, str] = {}
    app = DurableApp(db, refresh=3600, read_only=True)

    async def stop(name: str) -> None:
        await settle(app, pilot)
        if poke is not None:
            await poke(app, pilot, name)
        pictures[name] = app.export_screenshot()

    async with app.run_test(size=SIZE) as pilot:
        await stop("runs")
        await pilot.press("enter")
        detail = app.screen
        assert isinstance(detail, RunDetailScreen)
        for tab in (t for t in TABS if t in stops):
            detail.action_tab(tab)
            await stop(tab)
        if "task" in stops:
            detail.action_tab("tasks-tab")
            detail.query_one("#tasks", VimTable).focus()
            await pilot.press(*["j"] * task_row, "enter")
            assert isinstance(app.screen, TaskRunScreen)
            await stop("task")
        if "logs-area" in stops:
            await pilot.press("5")
            await stop("logs-area")
    return pictures


async def read_and_tour(
    db: Path, commands: Sequence[Sequence[str]], stops: Collection[str], **options: Any
) -> tuple[dict[str, subprocess.CompletedProcess[bytes]], dict[str, str]]:
    """Run the CLI `commands` (in other processes) while the TUI tours `db` here."""
    done: dict[str, subprocess.CompletedProcess[bytes]] = {}

    async def read() -> None:
        done.update(await anyio.to_thread.run_sync(run_all, db, commands))

    async with anyio.create_task_group() as group:
        group.start_soon(read)
        pictures = await tour(db, stops, **options)
    return done, pictures


# G1: permissions ---------------------------------------------------------------------------
@task
def small() -> int:
    return 1


@task
def large() -> bytes:
    return b"x" * 8192  # over the child's 1 KiB threshold: a result file


def private_files(base: Path, umask: int) -> dict[str, Any]:
    """Open a new state dir under `base`, run a flow, stat what exists (the umask and
    environment are put back: the parent runs it too, to import all the child needs)."""
    previous, threshold = (
        os.umask(umask),
        os.environ.get("DURABLE_RESULT_FILE_THRESHOLD"),
    )
    os.environ["DURABLE_RESULT_FILE_THRESHOLD"] = "1024"
    try:
        return _private_files(base / "state" / "durable.db")
    finally:
        os.umask(previous)
        if threshold is None:
            del os.environ["DURABLE_RESULT_FILE_THRESHOLD"]
        else:
            os.environ["DURABLE_RESULT_FILE_THRESHOLD"] = threshold


def _private_files(db: Path) -> dict[str, Any]:
    base = db.parent.parent
    with Flow("private") as flow:
        small()
        large()

    async def main() -> dict[str, Any]:
        store = await Store.open(db)
        try:
            state = await run_flow_async(flow, store=store)
            # The store is open: its -wal and -shm exist now.
            files = [db.parent, db, *db.parent.glob("durable.db-*"),
                     *db.parent.glob("durable.db.results"),
                     *db.parent.glob("durable.db.results/*")]  # fmt: skip
            found = {
                str(p.relative_to(base)): [
                    stat.S_IMODE(p.stat().st_mode),
                    p.stat().st_uid,
                ]
                for p in files
            }
        finally:
            await store.close()
        return {"state": state.name, "files": found, "euid": os.geteuid()}

    report = anyio.run(main)
    db.chmod(0o666)  # now refused for writing, as this user too
    try:
        anyio.run(close_store, db)
    except InsecurePermissionsError as exc:
        report["refused"] = str(exc)
    db.chmod(0o600)
    return report


def in_child(work: Callable[[Path], dict[str, Any]]) -> dict[str, Any]:
    """Run `work` in a forked child: as `nobody` when this is root, in a directory it
    owns; its report comes back as JSON through a pipe."""
    base = Path(tempfile.mkdtemp(prefix="durable-g1-", dir="/tmp"))
    root = os.geteuid() == 0
    try:
        if root:
            os.chown(base, NOBODY, NOBODY)
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: never returns into pytest
            code = 1
            try:
                os.close(read)
                if root:
                    os.setgroups([])
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                payload = json.dumps(work(base)).encode()
                code = 0
            except BaseException as exc:  # noqa: BLE001 (reported to the parent)
                payload = json.dumps({"error": repr(exc)}).encode()
            finally:
                os.write(write, payload)
                os._exit(code)
        os.close(write)
        chunks = []
        while chunk := os.read(read, 65536):
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        report: dict[str, Any] = json.loads(b"".join(chunks))
        assert os.waitstatus_to_exitcode(status) == 0, report
        return report
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.reliability
@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask022", "umask000"])
def test_g1_a_new_state_dir_and_its_files_are_private(
    umask: int, tmp_path: Path
) -> None:
    private_files(tmp_path, umask)  # here first: the child imports nothing new
    report = in_child(lambda base: private_files(base, umask))

    expected_uid = NOBODY if os.geteuid() == 0 else os.geteuid()
    assert report["euid"] == expected_uid
    assert report["state"] == "Success"
    files = report["files"]
    assert {"state", "state/durable.db", "state/durable.db-wal",
            "state/durable.db-shm"} <= set(files)  # fmt: skip
    results = [name for name in files if name.startswith("state/durable.db.results/")]
    assert results, files  # the large result went to a file
    for name, (mode, uid) in files.items():
        wanted = 0o700 if name in ("state", "state/durable.db.results") else 0o600
        assert (name, oct(mode)) == (name, oct(wanted))
        assert uid == expected_uid
    assert "0666" in report["refused"]
    assert "chmod 600" in report["refused"]


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("case", "refused"),
    [
        ("db 0644", False),
        ("db 0666", True),
        ("db 0660", True),
        ("wal 0666", True),
        ("dir 0777", True),
        ("dir 1777", False),
    ],
)
def test_g1_a_writer_refuses_files_others_can_write(
    case: str, refused: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DURABLE_ALLOW_INSECURE_PERMS", raising=False)
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    db = folder / "durable.db"
    anyio.run(close_store, db)
    # Held open with a write in it, the -wal has frames (SQLite itself gives an empty
    # -wal the database's mode when it opens it).
    with closing(sqlite3.connect(db, isolation_level=None)) as held:
        held.execute("CREATE TABLE IF NOT EXISTS g1 (x)")
        held.execute("INSERT INTO g1 VALUES (1)")
        what, mode = case.split()
        target = {"db": db, "wal": db.with_name("durable.db-wal"), "dir": folder}[what]
        assert target.exists()
        target.chmod(int(mode, 8))
        before = db.read_bytes()

        if refused:
            with pytest.raises(InsecurePermissionsError) as caught:
                anyio.run(close_store, db)
            message = str(caught.value)
            assert str(target) in message
            assert f"{int(mode, 8) & 0o7777:04o}" in message
            assert "--allow-insecure-perms" in message
            assert db.read_bytes() == before  # refused before anything was written
            monkeypatch.setenv("DURABLE_ALLOW_INSECURE_PERMS", "1")
        anyio.run(close_store, db)  # allowed (or never refused)
        assert anyio.run(open_readonly, db)  # readers are never refused


async def close_store(db: Path) -> None:
    store = await Store.open(db)
    await store.close()


async def open_readonly(db: Path) -> bool:
    store = await Store.open(db, readonly=True)
    await store.close()
    return True


@pytest.mark.reliability
def test_g1_the_cli_exits_2_on_an_insecure_database_unless_allowed(
    tmp_path: Path,
) -> None:
    flow = write_flow(tmp_path, """
        from durable import Flow, task

        @task
        def one() -> int:
            return 1

        with Flow("perms") as flow:
            one()
        """)  # fmt: skip
    db = tmp_path / "perms.db"
    with Flow("perms") as first:
        small()
    assert first.run(db=db).is_successful()
    db.chmod(0o666)

    done = run_all(db, [("run", str(flow)), ("runs",)])
    refused = done[f"run {flow}"]
    assert refused.returncode == 2, output(refused)
    line = refused.stderr.decode()
    assert f"Database file {str(db)!r} is writable by other users (mode 0666)" in line
    assert f"chmod 600 {str(db)!r}" in line
    assert "--allow-insecure-perms or DURABLE_ALLOW_INSECURE_PERMS=1" in line
    assert len(harness.query(db, "SELECT id FROM flow_runs")) == 1  # nothing recorded
    assert done["runs"].returncode == 0  # a reader is not refused

    def allowed(how: str) -> subprocess.CompletedProcess[bytes]:
        if how == "flag":
            return cli(db, "--allow-insecure-perms", "run", str(flow))
        return cli(db, "run", str(flow), env={"DURABLE_ALLOW_INSECURE_PERMS": "1"})

    with ThreadPoolExecutor(max_workers=2) as pool:
        for result in pool.map(allowed, ("flag", "env")):
            assert result.returncode == 0, output(result)
    assert len(harness.query(db, "SELECT id FROM flow_runs")) == 3


# G2: secrets ------------------------------------------------------------------------------
SECRET_FLOW = """
    import logging
    import os
    import sys
    from datetime import timedelta

    from durable import Flow, Parameter, Secret, task

    log = logging.getLogger("user.secrets")


    @task(max_retries=1, retry_delay=timedelta(0), log_stdout=True)
    def use(token: str) -> int:
        print("printed", token)
        log.warning("logged %s", token)
        marker = os.environ["G2_MARKER"]
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise ValueError(f"bad {token}")
        return len(token)


    @task(task_run_name="call-{token}", cache_for=timedelta(hours=1))
    def loud(token: str) -> str:
        print("raw stdout", token)
        print("raw stderr", token, file=sys.stderr)
        try:
            raise RuntimeError(f"inner {token}")
        except RuntimeError:
            log.exception("caught")
        return "done"


    with Flow("secretive") as flow:
        if os.environ.get("G2_LEAKY"):  # the oracle's control: a plain parameter
            token = Parameter("API_KEY")
        else:
            token = Secret("API_KEY")
        use(token)
        loud(token)
    """


def secret_run(
    tmp_path: Path, name: str, secret: str, *, leaky: bool = False, executor: str = ""
) -> tuple[Path, bytes, bytes]:
    """Run the secret flow into a new database; return it, its WAL's bytes and the
    run's output."""
    folder = tmp_path / name
    folder.mkdir()
    flow = write_flow(folder, SECRET_FLOW)
    db = folder / "secrets.db"
    anyio.run(close_store, db)
    env = {"G2_MARKER": str(folder / "failed-once")}
    args = ["run", str(flow), *(["--executor", executor] if executor else [])]
    if leaky:
        env["G2_LEAKY"] = "1"
        args += ["--param", f"API_KEY={secret}"]
    else:
        env["DURABLE_SECRET_API_KEY"] = secret
    # A connection held open keeps the -wal after the run's process has closed its own.
    with closing(sqlite3.connect(db)) as held:
        held.execute("SELECT COUNT(*) FROM flow_runs").fetchall()
        run = cli(db, *args, env=env)
        assert run.returncode == 0, output(run)
        wal = db.with_name(db.name + "-wal").read_bytes()
    return db, wal, output(run)


@pytest.mark.reliability
@pytest.mark.timeout(90)
async def test_g2_a_secret_reaches_no_database_wal_output_or_screen(
    tmp_path: Path,
) -> None:
    secret = f"S3CR3T-{uuid.uuid4()}"
    needle = secret.encode()

    def both() -> list[tuple[Path, bytes, bytes]]:
        runs = [partial(secret_run, tmp_path, "secret", secret),
                partial(secret_run, tmp_path, "leaky", secret, leaky=True)]  # fmt: skip
        with ThreadPoolExecutor(max_workers=2) as pool:
            return list(pool.map(lambda run: run(), runs))

    (
        (db, wal, ran),
        (control, control_wal, control_ran),
    ) = await anyio.to_thread.run_sync(both)
    run_id, control_id = only_run(db), only_run(control)
    done, pictures = await read_and_tour(
        db, [("show", run_id), ("logs", run_id), ("runs",), ("flows",)],
        ("tasks-tab", "logs", "params", "task"), task_row=1,
    )  # fmt: skip

    # It ran as asked: failed once with the message, printed, logged, named a run.
    tasks = dict(harness.query(db, "SELECT task_slug, attempts FROM task_runs"))
    assert tasks == {"API_KEY": 1, "use-1": 2, "loud-1": 1}
    messages = [m for (m,) in harness.query(db, "SELECT message FROM states")]
    assert "Error during execution of task: ValueError('bad ****')" in messages
    logs = "\n".join(m for (m,) in harness.query(db, "SELECT message FROM logs"))
    for line in ("printed ****", "logged ****", "caught", "RuntimeError: inner ****"):
        assert line in logs
    names = {n for (n,) in harness.query(db, "SELECT run_name FROM task_runs")}
    assert "call-****" in names
    assert b"raw stdout ****" in ran
    assert b"raw stderr ****" in ran
    assert b"use-1" in done[f"show {run_id}"].stdout
    assert b"printed ****" in done[f"logs {run_id}"].stdout

    places = {
        "database": db.read_bytes(),
        "-wal": wal,
        "output of run": ran,
        **{f"output of {line}": output(result) for line, result in done.items()},
        **{f"tui {stop}": svg.encode() for stop, svg in pictures.items()},
    }
    assert len(wal) > 4096  # the run's frames are there to search
    leaks = {where: data.count(needle) for where, data in places.items()}
    assert leaks == dict.fromkeys(places, 0)

    # The oracle sees a leak: the same flow with a plain Parameter leaks everywhere.
    control_done, control_pictures = await read_and_tour(
        control, [("show", control_id), ("logs", control_id)], ("params",)
    )
    assert control.read_bytes().count(needle) + control_wal.count(needle) > 0
    assert ran.count(needle) == 0
    assert control_ran.count(needle) > 0
    for result in control_done.values():
        assert output(result).count(needle) > 0
    assert needle.decode() in control_pictures["params"]


@pytest.mark.reliability
def test_g2_bodies_in_worker_processes_redact_the_secret_too(tmp_path: Path) -> None:
    secret = f"S3CR3T-{uuid.uuid4()}"
    db, wal, ran = secret_run(tmp_path, "process", secret, executor="process:2")

    assert harness.flow_run_state(db, only_run(db)) == "Success"
    assert b"raw stdout ****" in ran  # printed in a worker process: redacted there
    logs = "\n".join(m for (m,) in harness.query(db, "SELECT message FROM logs"))
    assert "logged ****" in logs  # made in a worker, replayed here
    for where, data in (("database", db.read_bytes()), ("-wal", wal), ("output", ran)):
        assert data.count(secret.encode()) == 0, where


@pytest.mark.reliability
def test_g2_a_resume_without_the_secret_fails_before_anything_runs(
    tmp_path: Path,
) -> None:
    flow = write_flow(tmp_path, """
        import os

        from durable import Flow, Secret, task

        @task
        def use(token: str) -> int:
            with open(os.environ["REL_SIDE_LOG"], "a") as side:
                side.write("start\\n")
            return len(token)

        with Flow("resumable") as flow:
            use(Secret("API_KEY"))
        """)  # fmt: skip
    db, side = tmp_path / "resume.db", tmp_path / "side.log"
    secret = {"DURABLE_SECRET_API_KEY": f"S3CR3T-{uuid.uuid4()}",
              "REL_SIDE_LOG": str(side)}  # fmt: skip
    crashed = cli(db, "run", str(flow),
                  env={**secret, "DURABLE_CRASH_AT": "before_result_commit:1"})  # fmt: skip
    assert crashed.returncode == -9, output(crashed)
    run_id = only_run(db)
    states = harness.query(db, "SELECT COUNT(*) FROM states")

    refused = cli(db, "resume", run_id, env={"REL_SIDE_LOG": str(side)})

    assert refused.returncode == 2, output(refused)
    error = refused.stderr.decode()
    assert "secret(s) 'API_KEY'" in error
    assert "DURABLE_SECRET_API_KEY" in error
    assert "a resumed run" in error
    assert harness.query(db, "SELECT COUNT(*) FROM states") == states  # nothing ran
    assert side.read_text() == "start\n"

    resumed = cli(db, "resume", run_id, env=secret)
    assert resumed.returncode == 0, output(resumed)
    assert harness.flow_run_state(db, run_id) == "Success"
    assert side.read_text() == "start\nstart\n"


@pytest.fixture
def forget_secrets() -> Iterator[None]:
    """Secrets registered by an in-process run stop being redacted afterwards."""
    redaction.forget_all()
    yield
    redaction.forget_all()


@task
def bearer(token: str) -> str:
    return f"Bearer {token}"


@task
def padded(token: str) -> bytes:
    return b"x" * 4096 + token.encode()


@task(checkpoint=False, cache_for=timedelta(hours=1))
def cached(token: str) -> str:
    return token[::-1][::-1]


@task
def harmless() -> int:
    return 2


@pytest.mark.reliability
def test_g2_results_holding_a_secret_are_refused_not_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget_secrets: None
) -> None:
    db = tmp_path / "refused.db"
    with Flow("plain") as plain:
        harmless()
    assert plain.run(db=db).is_successful()
    assert redaction.ACTIVE is False  # no secret, no redaction: one falsy check

    secret = f"S3CR3T-{uuid.uuid4()}"
    monkeypatch.setenv("DURABLE_SECRET_API_KEY", secret)
    monkeypatch.setenv("DURABLE_RESULT_FILE_THRESHOLD", "1024")
    with Flow("refusing") as flow:
        token = Secret("API_KEY")
        outcomes = [bearer(token), padded(token), cached(token)]
    state = flow.run(db=db)

    assert redaction.ACTIVE is True
    assert isinstance(state.result, dict)
    for outcome in outcomes:
        task_state: State = state.result[outcome]
        assert isinstance(task_state, Failed), task_state
        assert isinstance(task_state.result, SerializationError)
        assert "holds the value of a Secret" in str(task_state.result)
    files = tmp_path / "refused.db.results"
    assert not (files.exists() and list(files.iterdir()))  # no file kept, no temporary
    wal = db.with_name("refused.db-wal")
    stored = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert secret.encode() not in stored
    assert len(harness.query(db, "SELECT * FROM cache")) == 0


@pytest.mark.reliability
def test_g2_a_secret_too_short_to_redact_is_refused_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget_secrets: None
) -> None:
    monkeypatch.setenv("DURABLE_SECRET_PIN", "123")  # masking "123" would blank text
    with Flow("pin") as flow:
        bearer(Secret("pin"))
    refused = r"Secret 'pin' \(DURABLE_SECRET_PIN\): .* at least 4 characters"
    with pytest.raises(ConfigurationError, match=refused):
        flow.run(db=tmp_path / "pin.db")
    assert harness.query(tmp_path / "pin.db", "SELECT id FROM flow_runs") == []
    assert redaction.ACTIVE is False


# G3: pickle safety ---------------------------------------------------------------------------
class Sentinel:
    """Unpickling it creates a file: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.path), "w"))


@task(cache_for=timedelta(hours=1))
def valuable() -> dict[str, int]:
    return {"a": 1}


@task
def report(value: dict[str, int], when: Any) -> str:
    return f"{value} {when}"


@pytest.mark.reliability
@pytest.mark.timeout(90)
async def test_g3_no_reader_unpickles_what_the_database_holds(tmp_path: Path) -> None:
    db, sentinel = tmp_path / "pickles.db", tmp_path / "SENTINEL"
    with Flow("pickled") as flow:
        report(valuable(), Parameter("when"))
    when = datetime(2026, 1, 1, tzinfo=UTC)  # not JSON: parameters pickled
    state = await run_flow_async(flow, db=db, parameters={"when": when})
    assert state.is_successful()
    evil = pickle.dumps(Sentinel(sentinel))
    pickle.loads(evil).close()  # the oracle: unpickling it makes the sentinel
    assert sentinel.exists()
    sentinel.unlink()
    with closing(sqlite3.connect(db)) as conn, conn:
        assert conn.execute("UPDATE results SET value = ?, serializer = 'pickle'",
                            (evil,)).rowcount == 3  # fmt: skip
        assert conn.execute("UPDATE flow_runs SET parameters = ?", (evil,)).rowcount
        assert conn.execute("SELECT parameters_serializer FROM flow_runs").fetchone()[
            0] == "pickle"  # fmt: skip
        assert conn.execute("UPDATE cache SET value = ?", (evil,)).rowcount == 1
        assert conn.execute("UPDATE flows SET flow_blob = ?", (evil,)).rowcount == 1
    run_id = only_run(db)

    done, pictures = await read_and_tour(
        db, [("runs",), ("show", run_id), ("logs", run_id), ("flows",), ("doctor",)],
        ("tasks-tab", "params", "task"), task_row=1,
    )  # fmt: skip

    assert not sentinel.exists()  # 0 sentinels: nothing was unpickled
    assert all(result.returncode == 0 for result in done.values())
    assert b"(pickled, " in done[f"show {run_id}"].stdout  # the parameters, unread
    params_tab = pictures["params"]
    assert "(pickled," in params_tab
    assert "not&#160;shown" in params_tab


# G4: shell injection ----------------------------------------------------------------------
PAYLOADS = ("; touch S", "&& touch S", "| touch S", "$(touch S)", "`touch S`",
            "\ntouch S", "-rf", "--help", "*", "a\x00b")  # fmt: skip
PROBE = """
import json, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(sys.argv[2:]) + "\\n")
"""


@pytest.mark.reliability
def test_g4_shell_task_arguments_are_data_not_code(tmp_path: Path) -> None:
    work, seen = tmp_path / "work", tmp_path / "argv.jsonl"
    work.mkdir()
    (work / "keep.txt").write_text("a file for `*` to match, were it a glob")
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    modes: dict[str, dict[str, Any]] = {
        "argv": {},
        "shell": {"shell": True},
        "helper": {"helper_script": "cd ."},
    }
    with Flow("shell") as flow:
        tasks = {
            (mode, payload): ShellTask(name=f"{mode}-{i}", cwd=work, **options)(
                command=[sys.executable, "-I", "-S", str(probe), str(seen), payload]
            )
            for mode, options in modes.items()
            for i, payload in enumerate(PAYLOADS)
        }
    state = flow.run(db=tmp_path / "shell.db")

    assert isinstance(state.result, dict)
    assert sorted(p.name for p in work.iterdir()) == ["keep.txt"]  # 0 sentinels
    assert not (tmp_path / "S").exists()
    received = [json.loads(line) for line in seen.read_text().splitlines()]
    clean = [p for p in PAYLOADS if "\x00" not in p]
    assert sorted(received) == sorted([[p] for p in clean] * len(modes))
    for (_mode, payload), shell in tasks.items():
        outcome: State = state.result[shell]
        if "\x00" in payload:
            assert isinstance(outcome, Failed), outcome
            assert "holds a NUL byte" in str(outcome.message)
        else:
            assert outcome.is_successful(), outcome


# G5: terminal and markup injection ---------------------------------------------------------
async def hostile_database(tmp_path: Path) -> tuple[Path, str]:
    db = tmp_path / "hostile.db"

    @task(name=f"t{EVIL}", task_run_name=f"r{EVIL}")
    def hostile(value: str) -> None:
        import logging

        logging.getLogger(f"user{EVIL}").warning("log %s", value)
        raise ValueError(value)

    with Flow(f"f{EVIL}") as flow:
        hostile(Parameter(f"p{EVIL}", default=EVIL))
    run_id = f"g5{HOSTILE[1]}"
    store = await Store.open(db)
    try:
        state = await run_flow_async(flow, store=store, run_id=run_id)
        await store.set_limit(f"tag{EVIL}", 2)
    finally:
        await store.close()
    assert state.is_failed()
    return db, run_id


@pytest.mark.reliability
@pytest.mark.timeout(90)
async def test_g5_escape_sequences_and_markup_from_the_database_are_shown_not_obeyed(
    tmp_path: Path,
) -> None:
    db, run_id = await hostile_database(tmp_path)
    wal = db.with_name("hostile.db-wal")
    raw = db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert all(escape in raw for escape in (b"\x1b]52;c;Zm9v\x07", b"\x1b[2J"))

    clicked: list[str] = []

    async def click_the_markup(app: DurableApp, pilot: Any, stop: str) -> None:
        screen = app.screen
        if stop == "runs":
            table = screen.query_one(VimTable)
            start = markup_column(table)
            for x in clicks(start):
                await pilot.click(table, offset=(x, 1))
        elif stop == "tasks-tab":
            text = screen.query_one("#header", Static).content
            assert isinstance(text, Text)
            at = text.plain.index(MARKUP)  # shown as text: not read as markup
            for x in clicks(at + 1):  # after the header's padding
                await pilot.click("#header", offset=(x, 0))
        elif stop == "logs":
            lines = screen.query_one(FollowLog).lines
            assert any(MARKUP in line for line in lines)
            assert not any("\x1b" in line for line in lines)
        else:
            return
        assert app.is_running  # no click quit the app
        assert app.return_code is None
        clicked.append(stop)

    done, pictures = await read_and_tour(
        db, [("runs",), ("show", run_id), ("logs", run_id), ("flows",),
             ("limits", "ls"), ("doctor",)],
        ("tasks-tab", "logs", "events", "task", "logs-area"), poke=click_the_markup,
    )  # fmt: skip
    for command, result in done.items():
        data = output(result)
        found = {e: data.count(e) for e in ESCAPES}
        assert found == dict.fromkeys(ESCAPES, 0), (command, data)
    shown = done[f"show {run_id}"].stdout.decode()
    assert MARKUP in shown  # as text, not read as markup
    assert "]0;pwned" in shown
    assert "[link=file:///etc/passwd]x[/]" in done[f"logs {run_id}"].stdout.decode()

    assert clicked == ["runs", "tasks-tab", "logs"]
    for svg in pictures.values():
        assert "\x1b" not in svg
        assert "\x07" not in svg
    assert MARKUP in pictures["runs"]
    assert MARKUP in pictures["tasks-tab"]


def clicks(start: int) -> list[int]:
    """Where to click on `MARKUP` shown from `start`: where its link would be, were it
    read as markup ("click" in its place), and on the word "click" in the text."""
    word = MARKUP.index("]click") + 1
    return [start, start + 2, start + 4, start + word + 2]


def markup_column(table: VimTable) -> int:
    """The x offset, in the table, of `MARKUP` in the first row's cells."""
    x = 0
    for column, cell in zip(table.ordered_columns, table.get_row_at(0), strict=True):
        text = cell.plain if isinstance(cell, Text) else str(cell)
        if MARKUP in text:
            return x + table.cell_padding + text.index(MARKUP)
        x += column.get_render_width(table)
    raise AssertionError("no cell of the first row shows the markup")


# G6: a hostile database file (nightly) ----------------------------------------------------
def hostile_file(tmp_path: Path, kind: str) -> Path:
    db = tmp_path / f"{kind}.db"
    with Flow("victim") as flow:
        harmless()
    assert flow.run(db=db).is_successful()
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
        if kind in ("big_row", "all"):
            conn.execute("UPDATE flow_runs SET state_message = zeroblob(999000000)")
        if kind in ("recursive_view", "all"):
            columns = [r[1] for r in conn.execute("PRAGMA table_info(flow_runs)")]
            values = ", ".join(
                "'r' || n AS id" if c == "id" else
                "n AS created_at" if c == "created_at" else
                "'Running' AS state" if c == "state" else
                "1 AS flow_id" if c == "flow_id" else f"NULL AS {c}"
                for c in columns
            )  # fmt: skip
            if kind == "all":
                conn.execute("ALTER TABLE flow_runs RENAME TO flow_runs_big")
            else:
                conn.execute("PRAGMA foreign_keys=OFF")
                conn.execute("DROP TABLE flow_runs")
            conn.execute(
                "CREATE VIEW flow_runs AS WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL"
                f" SELECT n + 1 FROM c) SELECT {values} FROM c"
            )
        if kind in ("negative_version", "all"):
            conn.execute("PRAGMA user_version=-1")
    return db


PEAK = """
import atexit, runpy, sys

def peak(path=sys.argv.pop(1)):  # VmHWM: this image's peak (not ru_maxrss: a forked
    with open("/proc/self/status") as status, open(path, "w") as out:  # child's is
        out.write(next(line for line in status if line.startswith("VmHWM")))  # pytest's

atexit.register(peak)
sys.argv[0] = "durable"
runpy.run_module("durable", run_name="__main__")
"""


def measured(db: Path, *args: str) -> tuple[float, int, int, bytes]:
    """Run the CLI; return its wall time, peak RSS (bytes), exit code and output."""
    out, peak = db.with_name(f"{db.stem}-{args[0]}.out"), db.with_name("peak.txt")
    command = [sys.executable, "-c", PEAK, str(peak), "--db", str(db), *args]
    started = time.monotonic()
    done = subprocess.run(
        command, env=harness.durable_env(), capture_output=True, timeout=60,
        start_new_session=True, check=False,
    )  # fmt: skip
    took = time.monotonic() - started
    out.write_bytes(output(done))
    kib = int(peak.read_text().split()[1])  # "VmHWM:   36092 kB"
    return took, kib * 1024, done.returncode, output(done)


@pytest.mark.nightly
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "kind", ["big_row", "recursive_view", "negative_version", "all"]
)
def test_g6_a_hostile_database_is_reported_quickly_in_bounded_memory(
    kind: str, tmp_path: Path
) -> None:
    db = hostile_file(tmp_path, kind)
    seen: dict[str, tuple[int, bytes]] = {}
    for command in ("runs", "doctor"):
        took, rss, code, text = measured(db, command)
        print(f"{kind} {command}: {took:.2f} s, {rss / 2**20:.0f} MiB, exit {code}")
        assert took <= 5.0, (command, took, text)
        assert rss <= 200 * 2**20, (command, rss)
        assert code in (0, 1, 3), (command, code, text)  # a report or one error line
        assert b"Traceback" not in text
        seen[command] = (code, text)
    code, text = seen["runs"]
    assert code == 3, text
    expected = {"big_row": b"larger than 64 MiB", "recursive_view": b"longer than 2 s"}
    assert expected.get(kind, b"schema version -1") in text
    if kind != "big_row":  # the doctor names what is wrong (a big row it never reads)
        code, text = seen["doctor"]
        assert code == 3, text
        assert b"schema version -1" in text.lower() or b"should be tables" in text
    db.unlink()  # a gigabyte
