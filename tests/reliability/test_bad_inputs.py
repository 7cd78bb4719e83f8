"""Bad inputs (RELIABILITY.md 5.6, group F): each is rejected cleanly, with nothing
half-written, or stored and read back exactly.

Mapping onto durable:

- Schedules are checked when they are built, i.e. when a flow file loads, so
  `durable register` refuses a bad one (exit 2) before it opens the database: 0 flow
  and 0 schedule rows. Cron's next-fire search is bounded (cronsim gives up after 50
  years; the never-fires check scans 28 years), so a never-firing expression is
  refused in milliseconds, not searched for forever.
- Parameters are untyped, as in Prefect 1 (no `int` parameter exists to give "abc" to:
  a value is stored as given). What is checked before the run row exists: unknown
  names, missing required ones, a `DateTimeParameter` value that is not a date and time
  (it used to fail only later, at the parameter's task, after the run existed), and
  parameters too large for one row (SQLite's length limit, 1e9 bytes by default; the
  test lowers it with `DURABLE_TEST_LIMIT_LENGTH`). There is no smaller configured limit:
  a 10 MB parameter is stored.
- Task bodies raising BaseExceptions: every kind fails its task run, named, on every
  executor (a CancelledError or a custom BaseException used to escape the run and
  leave it Running; a GeneratorExit on a thread broke the event loop). A
  KeyboardInterrupt on the engine's own thread is taken as Ctrl-C, the documented
  policy: the run stops, exits 130 and stays resumable; on a worker thread or in a
  worker process, where Ctrl-C never arrives, it fails the task (`InterruptedBody`).
- `os._exit(0)` cannot be caught: `durable run` exits 0 without having finished, but
  the database shows the run unfinished and `durable resume` reruns the task; under
  `durable worker` the ended-unfinished run is counted as a crash and resumed.
- DB path on NFS/CIFS/FUSE: not built (no statfs check exists); not tested.
- Terminal and markup sanitising of stored strings is group G (G5), not repeated here.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import math
import socket
import sqlite3
import subprocess
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from durable import Flow, task
from durable.cli.base import EXIT_INTERRUPTED, EXIT_USAGE
from durable.errors import ConfigurationError, SerializationError
from durable.executors import (
    ConcurrentExecutor,
    Executor,
    LocalExecutor,
    ProcessExecutor,
)
from durable.schedules import CronClock, IntervalClock
from durable.states import State
from tests.cli.test_cli import durable
from tests.reliability import harness
from tests.reliability.invariants import check_invariants

REPO = harness.REPO


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def rows(db: Path, table: str) -> int:
    """Rows in `table` (0 when the database or the table does not exist)."""
    if not db.exists():
        return 0
    try:
        return int(harness.query(db, f"SELECT COUNT(*) FROM {table}")[0][0])
    except sqlite3.OperationalError:  # no schema
        return 0


def by_name(state: State) -> dict[str, State]:
    """A flow run's task states by task name."""
    assert isinstance(state.result, dict)
    return {t.name: s for t, s in state.result.items()}


def no_task_left_running(db: Path) -> None:
    left = harness.query(
        db,
        "SELECT task_slug, state FROM task_runs WHERE state IN ('Running', 'Pending')",
    )
    assert left == []


# Schedules ---------------------------------------------------------------------------
CRONS = {
    "61 * * * *": "has a bad minute field; it accepts 0-59",
    "* * *": "has 3 fields, not 5",
    "0 0 31 2 *": "never fires",
    "@every -5m": "is not a cron shorthand",
    "": "has 0 fields, not 5",
    "\u00a0* * * * *": "contains U+00A0 (NO-BREAK SPACE) at position 0",
}


@pytest.mark.reliability
@pytest.mark.parametrize("expr", list(CRONS), ids=repr)
def test_a_malformed_cron_is_refused_at_registration_naming_the_field(
    tmp_path: Path, expr: str
) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigurationError) as refused:
        CronClock(expr)
    seconds = time.monotonic() - started
    assert CRONS[expr] in str(refused.value)
    assert seconds < 1.0  # the search for a next fire time is bounded
    flow = write(tmp_path / "scheduled.py", f"""\
        from durable import Flow, task
        from durable.schedules import CronSchedule


        @task
        def tick() -> int:
            return 1


        with Flow("scheduled", schedule=CronSchedule({expr!r})) as flow:
            tick()
        """)  # fmt: skip
    db = tmp_path / "sched.db"

    result = durable("--db", db, "register", flow)

    assert result.exit_code == EXIT_USAGE, result.output
    assert CRONS[expr] in result.output
    assert "Traceback" not in result.output
    assert rows(db, "flows") == 0
    assert rows(db, "scheduled_runs") == 0


@pytest.mark.reliability
@pytest.mark.parametrize("zone", ["Mars/Olympus", "UTC+25", ""])
def test_an_unknown_time_zone_is_a_clear_validation_error(zone: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        CronClock("0 9 * * *", timezone=zone)

    message = str(refused.value)
    assert "CronClock timezone" in message
    assert repr(zone) in message
    assert "IANA name" in message


@pytest.mark.reliability
@pytest.mark.parametrize(
    "interval",
    [
        timedelta(0),
        timedelta(seconds=-1),
        0,
        -5.0,
        math.nan,
        math.inf,
        timedelta(days=36526),
        1e12,
    ],
    ids=repr,
)
def test_an_interval_not_positive_finite_and_within_100_years_is_refused(
    interval: object,
) -> None:
    with pytest.raises(ConfigurationError, match="IntervalClock interval"):
        IntervalClock(interval)  # type: ignore[arg-type]


# Parameters --------------------------------------------------------------------------
PARAMETER_FLOW = """\
    from durable import DateTimeParameter, Flow, Parameter, task


    @task
    def show(n: object, opt: object, when: object) -> str:
        return f"{n!r} {opt!r} {when!r}"


    with Flow("params") as flow:
        show(Parameter("n"), Parameter("opt", default=1),
             DateTimeParameter("when", required=False))
    """


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("given", "said"),
    [
        (["-p", "n=1", "-p", "nope=2"], "has no parameter(s) 'nope'"),
        (["-p", "opt=2"], "is missing required parameter(s) 'n'"),
        (["-p", "n=1", "-p", "when=2026-13-01"], "'when' takes a date and time"),
        (["-p", "n=1", "-p", "when=7"], "'when' takes a date and time"),
    ],
    ids=["unknown", "missing", "bad-datetime", "datetime-given-int"],
)
def test_a_bad_parameter_is_refused_before_the_run_exists(
    tmp_path: Path, given: list[str], said: str
) -> None:
    flow = write(tmp_path / "params.py", PARAMETER_FLOW)
    db = tmp_path / "params.db"

    result = durable("--db", db, "run", flow, *given)

    assert result.exit_code == EXIT_USAGE, result.output
    assert said in result.output
    assert "Traceback" not in result.output
    assert rows(db, "flow_runs") == 0


@pytest.mark.reliability
def test_parameters_are_untyped_and_good_ones_run(tmp_path: Path) -> None:
    flow = write(tmp_path / "params.py", PARAMETER_FLOW)
    db = tmp_path / "params.db"

    result = durable("--db", db, "run", flow, "-p", "n=abc",
                     "-p", "when=2026-01-31T09:00:00+01:00")  # fmt: skip

    assert result.exit_code == 0, result.output
    (run_id,) = [r[0] for r in harness.query(db, "SELECT id FROM flow_runs")]
    value = harness.read_results(db, run_id)["show-1"]
    assert value.startswith("'abc' 1 DateTime(2026, 1, 31, 9, 0, 0")  # as given


@pytest.mark.reliability
def test_parameters_too_large_for_one_row_are_refused_and_10_mb_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flow = write(tmp_path / "params.py", PARAMETER_FLOW)
    small = tmp_path / "small.db"
    monkeypatch.setenv("DURABLE_TEST_LIMIT_LENGTH", str(1_000_000))

    result = durable("--db", small, "run", flow, "-p", f"n={'x' * 2_000_000}")

    assert result.exit_code == EXIT_USAGE, result.output[-2000:]
    assert "bytes stored, more than one database row holds" in result.output
    assert rows(small, "flow_runs") == 0
    monkeypatch.delenv("DURABLE_TEST_LIMIT_LENGTH")
    big = tmp_path / "big.db"

    result = durable("--db", big, "run", flow, "-p", f"n={'y' * 10_000_000}")

    assert result.exit_code == 0, result.output[-2000:]
    stored = harness.query(big, "SELECT length(parameters) FROM flow_runs")
    assert stored[0][0] > 10_000_000


# Results that cannot be stored -------------------------------------------------------
_sockets: list[socket.socket] = []


@task
def a_lock() -> object:
    return threading.Lock()


@task
def a_generator() -> object:
    return (i for i in range(3))


@task
def a_socket() -> object:
    sock = socket.socket()
    _sockets.append(sock)  # closed by the test: no ResourceWarning
    return sock


@task(serializer="json")
def a_lambda_as_json() -> object:
    return lambda: 1


@task
def fine() -> int:
    return 42


@pytest.fixture
def sockets_closed() -> Iterator[None]:
    yield
    while _sockets:
        _sockets.pop().close()


@pytest.mark.reliability
@pytest.mark.usefixtures("sockets_closed")
def test_results_that_cannot_be_serialized_fail_their_task_naming_the_type(
    tmp_path: Path,
) -> None:
    db = tmp_path / "unpicklable.db"
    with Flow("unpicklable", executor=LocalExecutor()) as flow:
        a_lock()
        a_generator()
        a_socket()
        a_lambda_as_json()
        fine()

    state = flow.run(db=db)

    states = by_name(state)
    assert state.is_failed()
    assert states["fine"].is_successful()  # the run went on with the other tasks
    for name, type_name, serializer in [
        ("a_lock", "lock", "pickle"),
        ("a_generator", "generator", "pickle"),
        ("a_socket", "socket", "pickle"),
        ("a_lambda_as_json", "function", "json"),
    ]:
        failed = states[name]
        assert failed.is_failed(), name
        assert isinstance(failed.result, SerializationError), name
        assert failed.result.type_name == type_name
        assert f"returned a {type_name} that the {serializer!r} serializer" in (
            failed.message or ""
        )
    no_task_left_running(db)
    assert check_invariants(db, settled=True) == []


# Task bodies raising BaseExceptions --------------------------------------------------
class Custom(BaseException):
    """A BaseException of the user's own."""


RAISED: dict[str, Callable[[], BaseException]] = {
    "SystemExit(0)": lambda: SystemExit(0),
    "SystemExit(3)": lambda: SystemExit(3),
    "GeneratorExit": GeneratorExit,
    "CancelledError": asyncio.CancelledError,
    "Custom": lambda: Custom("custom"),
    "KeyboardInterrupt": KeyboardInterrupt,
}


@task
def raises(kind: str) -> int:
    raise RAISED[kind]()


def make_executor(kind: str) -> Executor:
    if kind == "concurrent":
        return ConcurrentExecutor(2)
    if kind == "process":
        return ProcessExecutor(2)
    return LocalExecutor()


@pytest.mark.reliability
@pytest.mark.timeout(60)
@pytest.mark.parametrize("executor", ["local", "concurrent", "process"])
def test_a_task_raising_any_base_exception_fails_named_and_the_run_goes_on(
    tmp_path: Path, executor: str
) -> None:
    # On the engine's own thread (local) a KeyboardInterrupt is Ctrl-C: tested below.
    kinds = [k for k in RAISED if executor != "local" or k != "KeyboardInterrupt"]
    chosen = make_executor(executor)
    db = tmp_path / "raises.db"
    with Flow("raises", executor=chosen) as flow:
        for kind in kinds:
            raises(kind, task_args={"name": kind, "slug": kind.lower().strip("()")})
        fine()

    state = flow.run(db=db)

    states = by_name(state)
    assert state.is_failed()
    assert states["fine"].is_successful()
    for kind in kinds:
        assert states[kind].is_failed(), (kind, states[kind])
        named = "KeyboardInterrupt()" if kind == "KeyboardInterrupt" else kind
        assert named.removesuffix("()") in (states[kind].message or ""), kind
    no_task_left_running(db)
    assert check_invariants(db, settled=True) == []


INTERRUPTED_FLOW = """\
    from pathlib import Path

    from durable import Flow, task

    MARK = Path(__file__).with_name("interrupted-once")


    @task
    def before() -> int:
        return 1


    @task
    def interrupts(x: int) -> int:
        if not MARK.exists():
            MARK.write_text("x")
            raise KeyboardInterrupt
        return x + 1


    with Flow("interrupted") as flow:
        interrupts(before())
    """


@pytest.mark.reliability
@pytest.mark.timeout(60)
def test_keyboard_interrupt_on_the_engine_thread_stops_the_run_resumably(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path / "interrupted.py", INTERRUPTED_FLOW)
    db = tmp_path / "interrupted.db"

    proc = subprocess.run(
        harness.durable_command(db, "run", str(flow)), env=harness.durable_env(),
        capture_output=True, text=True, timeout=60, start_new_session=True, check=False,
    )  # fmt: skip

    assert proc.returncode == EXIT_INTERRUPTED, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    (run_id,) = [r[0] for r in harness.query(db, "SELECT id FROM flow_runs")]
    assert f"Interrupted; continue with: durable resume {run_id}" in proc.stderr
    assert harness.flow_run_state(db, run_id) != "Success"
    assert check_invariants(db) == []

    resumed = durable("--db", db, "resume", run_id)

    assert resumed.exit_code == 0, resumed.output
    assert harness.read_results(db, run_id)["interrupts-1"] == 2
    assert check_invariants(db, settled=True) == []


EXIT_FLOW = """\
    import os
    from pathlib import Path

    from durable import Flow, task

    MARK = Path(__file__).with_name("exited-once")


    @task
    def before() -> int:
        return 1


    @task
    def exits(x: int) -> int:
        if not MARK.exists():
            MARK.write_text("x")
            os._exit(0)
        return x + 1


    with Flow("exits") as flow:
        exits(before())
    """


@pytest.mark.reliability
@pytest.mark.timeout(90)
def test_os_exit_0_in_a_task_is_a_crash_not_a_success(tmp_path: Path) -> None:
    flow = write(tmp_path / "exits.py", EXIT_FLOW)
    db = tmp_path / "exits.db"

    proc = subprocess.run(
        harness.durable_command(db, "run", str(flow)), env=harness.durable_env(),
        capture_output=True, text=True, timeout=60, start_new_session=True, check=False,
    )  # fmt: skip

    # os._exit cannot be caught: the exit status is the task's, but the database
    # says the run did not finish, and resume runs the task again.
    assert proc.returncode == 0
    (run_id,) = [r[0] for r in harness.query(db, "SELECT id FROM flow_runs")]
    assert harness.flow_run_state(db, run_id) == "Running"
    assert "exits-1" not in harness.read_results(db, run_id)
    assert check_invariants(db) == []

    resumed = durable("--db", db, "resume", run_id)

    assert resumed.exit_code == 0, resumed.output
    assert harness.read_results(db, run_id)["exits-1"] == 2
    assert check_invariants(db, settled=True) == []

    # Under a worker: the run process ends (status 0) with its run unfinished, which
    # the worker counts as a crash, and the next launch resumes it.
    (tmp_path / "exited-once").unlink()
    worker_db = tmp_path / "worker.db"
    assert durable("--db", worker_db, "register", flow).exit_code == 0
    scheduled = harness.trigger(worker_db, "exits")
    burst = subprocess.run(
        harness.durable_command(worker_db, "worker", "--burst"),
        env=harness.durable_env(), capture_output=True, text=True, timeout=60,
        start_new_session=True, check=False,
    )  # fmt: skip

    assert burst.returncode == 0, burst.stderr[-2000:]
    assert f"scheduled run {scheduled} crashed (exit code 0)" in burst.stderr
    row = harness.scheduled_run(worker_db, scheduled)
    assert (row["status"], row["crashes"]) == ("Finished", 1)
    assert harness.read_results(worker_db, scheduled)["exits-1"] == 2
    assert check_invariants(worker_db, settled=True) == []


DEEP_FLOW = """\
    from durable import Flow, task


    def nest(levels: int) -> list:
        value: list = []
        for _ in range(levels):
            value = [value]
        return value


    def down(n: int) -> int:
        return down(n + 1)


    @task
    def recursion() -> int:
        return down(0)


    @task
    def deep_pickle() -> list:
        return nest(100_000)


    @task(serializer="json")
    def deep_json() -> list:
        return nest(100_000)


    @task
    def fine() -> int:
        return 1


    with Flow("deep") as flow:
        recursion()
        deep_pickle()
        deep_json()
        fine()
    """


@pytest.mark.reliability
@pytest.mark.timeout(60)
def test_infinite_recursion_and_deeply_nested_results_fail_and_never_hang(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path / "deep.py", DEEP_FLOW)
    db = tmp_path / "deep.db"

    # In a process of its own: a C stack overflow would be a crash, not a test error.
    proc = subprocess.run(
        harness.durable_command(db, "run", str(flow)), env=harness.durable_env(),
        capture_output=True, text=True, timeout=60, start_new_session=True, check=False,
    )  # fmt: skip

    assert proc.returncode == 1, proc.stderr[-3000:]  # finished Failed: no crash here
    found = dict(harness.query(db, "SELECT task_slug, state FROM task_runs"))
    assert found == {"recursion-1": "Failed", "deep_pickle-1": "Failed",
                     "deep_json-1": "Failed", "fine-1": "Success"}  # fmt: skip
    messages = dict(harness.query(db, "SELECT task_slug, state_message FROM task_runs"))
    assert "RecursionError" in messages["recursion-1"]
    assert "returned a list that the 'pickle' serializer" in messages["deep_pickle-1"]
    assert "returned a list that the 'json' serializer" in messages["deep_json-1"]
    assert check_invariants(db, settled=True) == []


# Values stored and read back exactly -------------------------------------------------
TEN_MB = "\u00e9" * 5_000_000  # 10 MB of UTF-8: over the file threshold (1 MiB)
EXACT: dict[str, Any] = {
    "nan": math.nan,
    "inf": math.inf,
    "minus_inf": -math.inf,
    "minus_zero": -0.0,
    "big_int": 2**64 + 1,
    "huge_negative_int": -(2**200) - 7,
    "nul_bytes": b"a\x00b\x00\x00c",
    "osc52": "\x1b]52;c;Zm9v\x07 and \x1b[2J",
    "markup": "[@click=app.quit]x[/] [link=file:///etc/passwd]y[/]",
    "sql": "'; DROP TABLE flow_runs;--",
    "ten_mb": TEN_MB,
}
JSON_ABLE = ("nan", "inf", "minus_inf", "minus_zero", "big_int", "huge_negative_int",
             "osc52", "markup", "sql", "ten_mb")  # fmt: skip


def same(a: object, b: object) -> bool:
    """Equal, NaN equal to NaN, and -0.0 told from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return type(a) is type(b) and a == b


@task
def give(key: str) -> object:
    return EXACT[key]


@task(serializer="json")
def give_json(key: str) -> object:
    return EXACT[key]


@pytest.mark.reliability
@pytest.mark.timeout(60)
def test_awkward_values_are_stored_and_read_back_losslessly(tmp_path: Path) -> None:
    db = tmp_path / "exact.db"
    with Flow("exact") as flow:
        for key in EXACT:
            give(key, task_args={"slug": f"p-{key}"})
        for key in JSON_ABLE:
            give_json(key, task_args={"slug": f"j-{key}"})

    assert flow.run(db=db, run_id="exact").is_successful()

    stored = harness.read_results(db, "exact")
    wrong = [key for key, value in EXACT.items() if not same(stored[f"p-{key}"], value)]
    wrong += [k for k in JSON_ABLE if not same(stored[f"j-{k}"], EXACT[k])]
    assert wrong == []
    files = harness.query(
        db, "SELECT COUNT(*) FROM results WHERE serializer LIKE 'file:%'"
    )
    assert files[0][0] == 2  # the 10 MB strings went to files, read back above


SQL_NAME = "'; DROP TABLE flow_runs;--"


@pytest.mark.reliability
def test_names_and_parameters_with_sql_metacharacters_are_stored_literally(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path / "sql.py", f"""\
        from durable import Flow, Parameter, task


        @task(name={SQL_NAME!r})
        def echo(value: str) -> str:
            return value


        with Flow({SQL_NAME!r}) as flow:
            echo(Parameter("p\\"'; --"))
        """)  # fmt: skip
    db = tmp_path / "sql.db"

    result = durable("--db", db, "run", flow, "-p", f"p\"'; --={SQL_NAME}")

    assert result.exit_code == 0, result.output
    assert harness.query(db, "SELECT flow_name FROM flow_runs") == [(SQL_NAME,)]
    names = harness.query(db, "SELECT task_name FROM task_runs ORDER BY task_name")
    assert names == [(SQL_NAME,), ("p\"'; --",)]
    (run_id,) = [r[0] for r in harness.query(db, "SELECT id FROM flow_runs")]
    assert SQL_NAME in harness.read_results(db, run_id).values()
    assert durable("--db", db, "runs").exit_code == 0
    assert check_invariants(db, settled=True) == []


SAFE_INTERPOLATIONS = {
    # Constants and values checked before use; anything new here needs a review.
    "BUSY_TIMEOUT_MS": "a constant",
    "TRUNCATE_BUSY_MS": "a constant",
    "APPLICATION_ID": "a constant",
    "SCHEMA_VERSION": "a constant",
    "SCHEDULED_RUN_COLUMNS": "a constant column list",
    "durability.upper()": "checked to be 'full' or 'normal' just before",
    "int(pages)": "an int (a test hook)",
    "table": "one of a fixed tuple of table names",
    "marks": "'?, ?, ...': placeholders only",
    "', '.join('?' * len(CORE_TABLES))": "placeholders only",
    "script": "SQLiteScript's SQL: the user's own script, by design",
}
EXECUTES = {"execute", "executemany", "executescript", "execute_fetchall"}


@pytest.mark.reliability
def test_sql_is_parameterized_no_formatting_inside_execute() -> None:
    found: list[str] = []
    for path in sorted(
        [*(REPO / "durable").rglob("*.py"), *(REPO / "tui").rglob("*.py")]
    ):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in EXECUTES
                and node.args
            ):
                continue
            sql, where = node.args[0], f"{path.relative_to(REPO)}:{node.lineno}"
            if isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Mod):
                found.append(f"{where}: % formatting")
            elif (
                isinstance(sql, ast.Call) and getattr(sql.func, "attr", "") == "format"
            ):
                found.append(f"{where}: str.format")
            elif isinstance(sql, ast.JoinedStr):
                found += [
                    f"{where}: f-string with {{{ast.unparse(part.value)}}}"
                    for part in sql.values
                    if isinstance(part, ast.FormattedValue)
                    and ast.unparse(part.value) not in SAFE_INTERPOLATIONS
                ]
    assert found == []


# Flow shapes -------------------------------------------------------------------------
@task
def step(x: int) -> int:
    return x


@pytest.mark.reliability
def test_a_cycle_and_duplicate_task_keys_are_refused_before_anything_is_stored(
    tmp_path: Path,
) -> None:
    db = tmp_path / "shapes.db"
    cyclic = Flow("cyclic")
    first, second = step.copy(), step.copy()
    cyclic.add_edge(first, second, key="x")
    with pytest.raises(ConfigurationError, match="would make a cycle"):
        cyclic.add_edge(second, first, key="x")
    with Flow("duplicates"):
        step(1, task_args={"slug": "same"})
        with pytest.raises(ConfigurationError, match="both have the slug 'same'"):
            step(2, task_args={"slug": "same"})
    flow = write(tmp_path / "dup.py", """\
        from durable import Flow, task


        @task
        def step(x: int) -> int:
            return x


        with Flow("duplicates") as flow:
            step(1, task_args={"slug": "same"})
            step(2, task_args={"slug": "same"})
        """)  # fmt: skip

    result = durable("--db", db, "run", flow)

    assert result.exit_code == EXIT_USAGE, result.output
    assert "both have the slug 'same'" in result.output
    assert not db.exists()


@task
def inc(x: int) -> int:
    return x + 1


@pytest.mark.reliability
@pytest.mark.timeout(120)
def test_a_10000_task_fan_out_finishes(tmp_path: Path) -> None:
    db = tmp_path / "fan.db"
    with Flow("fan") as flow:
        inc.map(list(range(10_000)))

    started = time.monotonic()
    state = flow.run(db=db, run_id="fan")
    seconds = time.monotonic() - started

    assert state.is_successful()
    children = harness.query(
        db,
        "SELECT COUNT(*), SUM(state = 'Success') FROM task_runs WHERE map_index >= 0",
    )
    assert children == [(10_000, 10_000)]
    results = harness.read_results(db, "fan")
    assert all(results[f"inc-1[{i}]"] == i + 1 for i in range(10_000))
    assert check_invariants(db, settled=True) == []
    print(f"10,000-task map: {seconds:.1f} s")


# Resume without the flow file --------------------------------------------------------
@pytest.mark.reliability
def test_resume_without_the_flow_file_names_it_and_writes_nothing(
    tmp_path: Path,
) -> None:
    flow = write(tmp_path / "gone.py", """\
        from durable import Flow, task


        @task
        def one() -> int:
            return 1


        with Flow("gone") as flow:
            one()
        """)  # fmt: skip
    db = tmp_path / "gone.db"
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 0
    with sqlite3.connect(db) as conn:  # one file, with the run marked unfinished
        conn.execute("UPDATE flow_runs SET state = 'Running' WHERE id = 'r1'")
    conn.close()
    flow.unlink()
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
              for p in tmp_path.iterdir()}  # fmt: skip

    result = durable("--db", db, "resume", "r1")

    assert result.exit_code == EXIT_USAGE, result.output
    assert f"The flow file of run 'r1' is gone ({str(flow)!r})" in result.output
    assert "pass --file PATH" in result.output
    assert "Traceback" not in result.output
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
             for p in tmp_path.iterdir()}  # fmt: skip
    # The reader may have made an -shm and an empty -wal; nothing was written.
    empty = hashlib.sha256(b"").hexdigest()
    assert after.pop("gone.db-wal", empty) == empty
    after.pop("gone.db-shm", None)
    assert after == before
