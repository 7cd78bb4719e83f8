"""The `durable` command, in-process through click's CliRunner, on flow files in tmp_path.

Flow files record every task body they run in a side file (`ran.txt`), so "ran again" and
"was not run again" are read from there; what was checkpointed is read from SQLite. A
crash is simulated by rewinding a finished run's rows to the moment a task was Running,
exactly what a kill at that moment leaves behind.
"""

from __future__ import annotations

import gc
import json
import logging
import re
import sqlite3
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from durable.cli import cli
from durable.store.schema import SCHEMA_VERSION

PRELUDE = """\
from datetime import timedelta

from durable import Flow, Parameter, context, task

RAN = {ran!r}


def ran(slug):
    with open(RAN, "a") as out:
        out.write(slug + "\\n")

"""

CHAIN = """
@task
def extract():
    ran("extract")
    return [1, 2, 3]


@task
def transform(xs):
    ran("transform")
    return [x * 10 for x in xs]


@task
def load(xs):
    ran("load")
    return sum(xs)


with Flow("chain") as flow:
    load(transform(extract()))
"""


class _CurrentStderr(logging.Handler):
    """A console handler that writes to whatever sys.stderr is when a record comes."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


@pytest.fixture(autouse=True)
def _isolated_cli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep each CLI test's console, sys.path and terminal width its own.

    durable gives its logger one console handler per process, bound to the sys.stderr of
    the moment: under CliRunner that is one test's captured stream. Flow files also put
    their directory on sys.path.
    """
    logger = logging.getLogger("durable")
    monkeypatch.setattr(logger, "handlers", [_CurrentStderr()])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: one row per line
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


def durable(*args: str | Path) -> Result:
    """Run `durable ARGS` in this process."""
    return CliRunner().invoke(cli, [str(a) for a in args])


def write_flow(tmp_path: Path, body: str, name: str = "flow.py") -> Path:
    """Write a flow file whose tasks can call `ran(slug)`."""
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    ran = str(tmp_path / "ran.txt")
    path.write_text(PRELUDE.format(ran=ran) + textwrap.dedent(body))
    return path


def ran(tmp_path: Path) -> Counter[str]:
    """How many times each task body ran, across every process and run."""
    side = tmp_path / "ran.txt"
    return Counter(side.read_text().split()) if side.exists() else Counter()


def rows(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Query the test database directly."""
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()


def count_flow_runs(db: Path) -> int:
    """How many flow runs the database holds (none if it was never created)."""
    if not db.exists():
        return 0
    tables = rows(db, "SELECT name FROM sqlite_master WHERE name = 'flow_runs'")
    return rows(db, "SELECT COUNT(*) FROM flow_runs")[0][0] if tables else 0


def is_one_line(result: Result) -> bool:
    """Whether the command printed exactly one non-empty line, and no traceback."""
    text = result.output.strip()
    return bool(text) and "\n" not in text and "Traceback" not in result.output


def crash_while_running(db: Path, run_id: str, slug: str) -> None:
    """Rewind run `run_id` to the moment task `slug` was Running, as a kill there would.

    Every later state row and result goes; task runs left without history are Pending.
    """
    with closing(sqlite3.connect(db)) as conn, conn:
        task_run_id, cut = conn.execute(
            "SELECT t.id, MAX(s.id) FROM task_runs t JOIN states s ON s.task_run_id = t.id"
            " WHERE t.flow_run_id = ? AND t.task_slug = ? AND s.name = 'Running'",
            (run_id, slug),
        ).fetchone()
        conn.execute(
            "DELETE FROM states WHERE flow_run_id = ? AND id > ?", (run_id, cut)
        )
        conn.execute(
            "UPDATE task_runs SET state = 'Pending', state_message = NULL, attempts = 0,"
            " has_result = 0, started_at = NULL, ended_at = NULL"
            " WHERE flow_run_id = ? AND id NOT IN"
            " (SELECT task_run_id FROM states WHERE task_run_id IS NOT NULL)",
            (run_id,),
        )
        conn.execute(
            "UPDATE task_runs SET state = 'Running', state_message = NULL,"
            " has_result = 0, ended_at = NULL WHERE id = ?",
            (task_run_id,),
        )
        conn.execute(
            "DELETE FROM results WHERE task_run_id IN (SELECT id FROM task_runs"
            " WHERE flow_run_id = ? AND state NOT IN ('Success', 'Failed'))",
            (run_id,),
        )
        conn.execute(
            "UPDATE flow_runs SET state = 'Running', state_message = NULL,"
            " ended_at = NULL WHERE id = ?",
            (run_id,),
        )


def task_table(output: str) -> dict[str, tuple[str, int]]:
    """Parse `durable show`'s task table: slug -> (state, attempts)."""
    lines = output.splitlines()
    start = next(
        i for i, line in enumerate(lines) if line.split()[:2] == ["Task", "run"]
    )
    table: dict[str, tuple[str, int]] = {}
    for line in lines[start + 1 :]:
        if not line.strip() or line.startswith("State history"):
            break
        slug, state, attempts = line.split()[:3]
        table[slug] = (state, int(attempts))
    return table


HISTORY_ROW = re.compile(
    r"^\s*\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\s+(flow run|\S+)\s+(\S+)"
)


def history_rows(output: str) -> list[tuple[str, str]]:
    """Parse `durable show`'s state history: (owner, state name) in printed order."""
    _, _, section = output.partition("State history")
    return [
        (match[1], match[2])
        for line in section.splitlines()
        if (match := HISTORY_ROW.match(line))
    ]


def run_ids(output: str) -> list[str]:
    """Parse `durable runs`: the run ids, in printed order."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    assert lines[0][:3] == ["Run", "Flow", "State"], output
    return [line[0] for line in lines[1:]]


# durable run ----------------------------------------------------------------------------
class TestRun:
    def test_a_successful_flow_run_exits_0(self, tmp_path: Path, db: Path) -> None:
        flow = write_flow(tmp_path, CHAIN)

        result = durable("--db", db, "run", flow)

        assert result.exit_code == 0, result.output
        assert ran(tmp_path) == {"extract": 1, "transform": 1, "load": 1}
        assert rows(db, "SELECT flow_name, state FROM flow_runs") == [
            ("chain", "Success")
        ]

    def test_a_failed_flow_run_exits_1(self, tmp_path: Path, db: Path) -> None:
        flow = write_flow(
            tmp_path,
            """
            @task
            def boom():
                raise ValueError("no")

            with Flow("fails") as flow:
                boom()
            """,
        )

        result = durable("--db", db, "run", flow)

        assert result.exit_code == 1, result.output
        assert rows(db, "SELECT state FROM flow_runs") == [("Failed",)]

    def test_file_colon_flow_picks_one_flow_of_a_file_with_two(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, TWO_FLOWS)

        result = durable("--db", db, "run", f"{flow}:second")

        assert result.exit_code == 0, result.output
        assert ran(tmp_path) == {"second": 1}
        assert rows(db, "SELECT flow_name FROM flow_runs") == [("second",)]

    def test_a_file_with_two_flows_and_no_flow_name_is_an_error_naming_both(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, TWO_FLOWS)

        result = durable("--db", db, "run", flow)

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "first" in result.output
        assert "second" in result.output
        assert ran(tmp_path) == {}
        assert count_flow_runs(db) == 0

    def test_a_missing_flow_file_is_a_one_line_error(
        self, tmp_path: Path, db: Path
    ) -> None:
        result = durable("--db", db, "run", tmp_path / "nowhere.py")

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "nowhere.py" in result.output

    def test_a_file_without_flows_is_a_one_line_error(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, "x = 1\n")

        result = durable("--db", db, "run", flow)

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "no Flow" in result.output

    def test_a_file_that_fails_to_load_is_a_one_line_error(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, "raise RuntimeError('broken flow file')\n")

        result = durable("--db", db, "run", flow)

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "broken flow file" in result.output


TWO_FLOWS = """
@task
def first():
    ran("first")


@task
def second():
    ran("second")


with Flow("first") as one:
    first()

with Flow("second") as two:
    second()
"""

PARAMETERS = """
import json

OUT = RAN + ".json"


@task
def record(n, s):
    with open(OUT, "w") as out:
        json.dump({"n": [n, type(n).__name__], "s": [s, type(s).__name__]}, out)


with Flow("params") as flow:
    record(Parameter("n", default=0), Parameter("s", default=""))
"""


class TestParameters:
    def test_values_are_json_when_they_parse_and_strings_otherwise(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, PARAMETERS)

        result = durable("--db", db, "run", flow, "--param", "n=3", "-p", "s=hello")

        assert result.exit_code == 0, result.output
        received = json.loads((tmp_path / "ran.txt.json").read_text())
        assert received == {"n": [3, "int"], "s": ["hello", "str"]}

    def test_an_unknown_parameter_exits_2_naming_it_and_records_nothing(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, PARAMETERS)

        result = durable("--db", db, "run", flow, "--param", "bogus=1")

        assert result.exit_code == 2
        assert "bogus" in result.output
        assert "Traceback" not in result.output
        assert not (tmp_path / "ran.txt.json").exists()
        assert count_flow_runs(db) == 0

    def test_a_param_without_a_value_exits_2(self, tmp_path: Path, db: Path) -> None:
        flow = write_flow(tmp_path, PARAMETERS)

        result = durable("--db", db, "run", flow, "--param", "novalue")

        assert result.exit_code == 2
        assert result.output.splitlines()[-1].startswith("Error: "), result.output
        assert "novalue" in result.output.splitlines()[-1]
        assert "Traceback" not in result.output
        assert count_flow_runs(db) == 0


# durable resume -------------------------------------------------------------------------
@pytest.fixture
def crashed_chain(tmp_path: Path, db: Path) -> Path:
    """The chain flow's file; its run 'nightly-0001' was killed while transform ran."""
    flow = write_flow(tmp_path, CHAIN, name="flows/chain.py")
    assert durable("--db", db, "run", flow, "--run-id", "nightly-0001").exit_code == 0
    crash_while_running(db, "nightly-0001", "transform-1")
    return flow


class TestResume:
    def test_resume_by_a_unique_prefix_reruns_only_what_had_not_finished(
        self, tmp_path: Path, db: Path, crashed_chain: Path
    ) -> None:
        assert (
            durable("--db", db, "run", crashed_chain, "--run-id", "other").exit_code
            == 0
        )
        before = ran(tmp_path)

        result = durable("--db", db, "resume", "nightly")

        assert result.exit_code == 0, result.output
        assert ran(tmp_path) - before == {"transform": 1, "load": 1}
        shown = durable("--db", db, "show", "nightly")
        assert task_table(shown.output) == {
            "extract-1": ("Success", 1),
            "transform-1": ("Success", 2),
            "load-1": ("Success", 1),
        }
        assert rows(db, "SELECT state FROM flow_runs WHERE id = 'nightly-0001'") == [
            ("Success",)
        ]

    def test_resume_of_an_ambiguous_prefix_exits_2(
        self, tmp_path: Path, db: Path, crashed_chain: Path
    ) -> None:
        durable("--db", db, "run", crashed_chain, "--run-id", "nightly-0002")

        result = durable("--db", db, "resume", "nightly")

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "several" in result.output

    def test_resume_of_an_unknown_run_exits_2_with_one_line(
        self, db: Path, crashed_chain: Path
    ) -> None:
        result = durable("--db", db, "resume", "no-such-run")

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "no-such-run" in result.output

    def test_resume_after_the_flow_file_moved_asks_for_file_and_file_works(
        self, tmp_path: Path, db: Path, crashed_chain: Path
    ) -> None:
        moved = crashed_chain.rename(tmp_path / "moved.py")
        before = ran(tmp_path)

        refused = durable("--db", db, "resume", "nightly-0001")
        resumed = durable("--db", db, "resume", "nightly-0001", "--file", moved)

        assert refused.exit_code == 2
        assert is_one_line(refused), refused.output
        assert "--file" in refused.output
        assert resumed.exit_code == 0, resumed.output
        assert ran(tmp_path) - before == {"transform": 1, "load": 1}

    def test_resume_with_a_changed_flow_is_refused_unless_changes_are_allowed(
        self, tmp_path: Path, db: Path, crashed_chain: Path
    ) -> None:
        crashed_chain.write_text(
            crashed_chain.read_text()
            + textwrap.dedent(
                """
                @task
                def report(total):
                    ran("report")


                with Flow("chain") as flow:
                    report(load(transform(extract())))
                """
            )
        )
        before = ran(tmp_path)

        refused = durable("--db", db, "resume", "nightly-0001")
        allowed = durable("--db", db, "resume", "nightly-0001", "--allow-flow-changes")

        assert refused.exit_code == 2
        assert is_one_line(refused), refused.output
        assert "'nightly-0001'" in refused.output
        assert "'chain'" in refused.output
        assert allowed.exit_code == 0, allowed.output
        assert ran(tmp_path) - before == {"transform": 1, "load": 1, "report": 1}


# durable runs ---------------------------------------------------------------------------
class TestRuns:
    @pytest.fixture
    def three_runs(self, tmp_path: Path, db: Path) -> None:
        """Runs a1 (alpha, Success), b1 (beta, Failed), a2 (alpha, Success), in order."""
        alpha = write_flow(
            tmp_path, "with Flow('alpha') as flow:\n    task(lambda: 1)()\n", "a.py"
        )
        beta = write_flow(
            tmp_path,
            "@task\ndef boom():\n    raise ValueError('no')\n\n"
            "with Flow('beta') as flow:\n    boom()\n",
            "b.py",
        )
        for file, run_id in ((alpha, "a1"), (beta, "b1"), (alpha, "a2")):
            durable("--db", db, "run", file, "--run-id", run_id)

    @pytest.mark.usefixtures("three_runs")
    @pytest.mark.parametrize(
        ("options", "expected"),
        [
            ((), ["a2", "b1", "a1"]),
            (("--flow", "alpha"), ["a2", "a1"]),
            (("--state", "Failed"), ["b1"]),
            (("--limit", "1"), ["a2"]),
            (("--flow", "alpha", "--state", "Failed"), []),
        ],
    )
    def test_runs_lists_the_newest_first_filtered_by_flow_state_and_limit(
        self, db: Path, options: Sequence[str], expected: list[str]
    ) -> None:
        result = durable("--db", db, "runs", *options)

        assert result.exit_code == 0, result.output
        if expected:
            assert run_ids(result.output) == expected
        else:
            assert result.output.strip() == "No flow runs yet."

    def test_runs_on_a_missing_database_exits_3_and_creates_nothing(
        self, tmp_path: Path
    ) -> None:
        missing = tmp_path / "missing.db"

        result = durable("--db", missing, "runs")

        assert result.exit_code == 3
        assert is_one_line(result), result.output
        assert not missing.exists()


# durable show and durable logs ----------------------------------------------------------
FLAKY = """
@task
def extract():
    return [1, 2]


@task(max_retries=1, retry_delay=timedelta(seconds=0))
def flaky(xs):
    if context.attempt == 1:
        raise TimeoutError("first attempt times out")
    return sum(xs)


with Flow("flaky") as flow:
    flaky(extract())
"""


class TestShow:
    def test_show_prints_task_runs_with_states_and_attempts(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, FLAKY)
        durable("--db", db, "run", flow, "--run-id", "r1")

        result = durable("--db", db, "show", "r1")

        assert result.exit_code == 0, result.output
        assert task_table(result.output) == {
            "extract-1": ("Success", 1),
            "flaky-1": ("Success", 2),
        }

    def test_show_prints_every_recorded_transition_in_order(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, FLAKY)
        durable("--db", db, "run", flow, "--run-id", "r1")
        recorded = rows(
            db,
            "SELECT COALESCE(t.task_slug, 'flow run'), s.name FROM states s"
            " LEFT JOIN task_runs t ON t.id = s.task_run_id"
            " WHERE s.flow_run_id = 'r1' ORDER BY s.id",
        )

        result = durable("--db", db, "show", "r1")

        assert history_rows(result.output) == recorded
        flaky = [state for owner, state in recorded if owner == "flaky-1"]
        assert flaky == ["Running", "Failed", "Retrying", "Running", "Success"]

    def test_no_history_hides_the_state_history(self, tmp_path: Path, db: Path) -> None:
        flow = write_flow(tmp_path, FLAKY)
        durable("--db", db, "run", flow, "--run-id", "r1")

        result = durable("--db", db, "show", "r1", "--no-history")

        assert result.exit_code == 0, result.output
        assert "State history" not in result.output
        assert "Retrying" not in result.output
        assert set(task_table(result.output)) == {"extract-1", "flaky-1"}

    def test_show_of_an_unknown_run_exits_2_with_one_line(
        self, tmp_path: Path, db: Path
    ) -> None:
        durable("--db", db, "run", write_flow(tmp_path, CHAIN))

        result = durable("--db", db, "show", "no-such-run")

        assert result.exit_code == 2
        assert is_one_line(result), result.output


class TestLogs:
    def test_logs_shows_context_logger_lines_and_captured_prints_with_their_task(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(
            tmp_path,
            """
            @task
            def extract():
                context.logger.info("extracted %d rows", 3)
                return 3


            @task(log_stdout=True)
            def report(n):
                print(f"printed: {n} rows")


            with Flow("logs") as flow:
                report(extract())
            """,
        )
        durable("--db", db, "run", flow, "--run-id", "r1")

        result = durable("--db", db, "logs", "r1")

        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert any("extract-1" in x and "extracted 3 rows" in x for x in lines)
        assert any("report-1" in x and "printed: 3 rows" in x for x in lines)


class TestOutputSafety:
    def test_terminal_escapes_from_the_database_are_never_printed(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(
            tmp_path,
            """
            @task(name="evil\\x1b[2Jname")
            def evil():
                context.logger.info("log \\x1b]0;pwned\\x07 line")
                raise ValueError("message \\x1b[31m red")


            with Flow("flow\\x1b[5m") as flow:
                evil()
            """,
        )
        assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 1

        outputs = {
            "show": durable("--db", db, "show", "r1").output,
            "logs": durable("--db", db, "logs", "r1").output,
            "runs": durable("--db", db, "runs").output,
        }

        assert "name" in outputs["show"]
        assert "pwned" in outputs["logs"]
        for command, output in outputs.items():
            assert "\x1b" not in output, command
            assert "\x07" not in output, command


# durable db path ------------------------------------------------------------------------
class TestDbPath:
    def test_db_option_wins_over_both_variables(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DURABLE_DB", str(tmp_path / "env.db"))

        result = durable("--db", tmp_path / "option.db", "db", "path")

        assert result.output.strip() == str(tmp_path / "option.db")

    def test_durable_db_wins_over_durable_home(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DURABLE_DB", str(tmp_path / "env.db"))

        result = durable("db", "path")

        assert result.output.strip() == str(tmp_path / "env.db")

    def test_durable_home_holds_the_default_database(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("DURABLE_HOME", str(tmp_path / "elsewhere"))

        result = durable("db", "path")

        assert result.output.strip() == str(tmp_path / "elsewhere" / "durable.db")


# A database from a newer durable --------------------------------------------------------
def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file of a directory, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize(
    "command",
    [
        ["runs"],
        ["show", "r1"],
        ["logs", "r1"],
        ["resume", "r1"],
        ["run", "FLOW"],
    ],
    ids=lambda command: command[0],
)
def test_a_database_from_a_newer_durable_is_refused_with_exit_5_and_not_modified(
    tmp_path: Path, command: list[str]
) -> None:
    flow = write_flow(tmp_path, CHAIN)
    db = tmp_path / "newer" / "durable.db"
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 0
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")  # one file: the bytes to compare
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    before = snapshot(db.parent)

    result = durable("--db", db, *[str(flow) if a == "FLOW" else a for a in command])

    assert result.exit_code == 5, result.output
    assert "newer" in result.output
    assert "Traceback" not in result.output
    assert snapshot(db.parent) == before


def test_a_finished_run_leaves_no_connection_open_on_its_database(
    tmp_path: Path, db: Path
) -> None:
    flow = write_flow(tmp_path, CHAIN)
    gc.disable()  # a gc pass must not be what closes a leaked connection
    try:
        assert durable("--db", db, "run", flow).exit_code == 0
        with closing(sqlite3.connect(db, timeout=0)) as conn:
            # Leaving WAL mode needs the only connection to the database.
            mode = conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
    finally:
        gc.enable()
    assert mode == "delete"


BROKEN_UNTIL_FIXED = """
import os


@task
def extract():
    ran("extract")
    return 1


@task
def transform(x):
    ran("transform")
    if os.path.exists(os.path.join(os.path.dirname(RAN), "broken")):
        raise RuntimeError("bad data")
    return x + 1


with Flow("flaky") as flow:
    transform(extract())
"""


def test_restart_reruns_the_failed_task_and_keeps_the_successes(tmp_path: Path) -> None:
    db, flow = tmp_path / "x.db", write_flow(tmp_path, BROKEN_UNTIL_FIXED)
    (tmp_path / "broken").touch()
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 1
    (tmp_path / "broken").unlink()
    assert durable("--db", db, "resume", "r1").exit_code == 1  # resume keeps failures
    result = durable("--db", db, "restart", "r1")
    assert result.exit_code == 0, result.output
    assert ran(tmp_path) == Counter({"extract": 1, "transform": 2})
    assert rows(db, "SELECT state FROM flow_runs") == [("Success",)]


def test_restart_dry_run_lists_what_runs_again_and_writes_nothing(
    tmp_path: Path,
) -> None:
    db, flow = tmp_path / "x.db", write_flow(tmp_path, BROKEN_UNTIL_FIXED)
    (tmp_path / "broken").touch()
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 1
    before = rows(db, "SELECT COUNT(*) FROM states")

    result = durable("--db", db, "restart", "r1", "--dry-run")

    assert result.exit_code == 0, result.output
    assert "run again  transform-1  Failed  (Failed)" in result.output
    assert "reuse      extract-1  Success" in result.output
    assert "1 task runs would run again, 1 reused" in result.output
    assert rows(db, "SELECT COUNT(*) FROM states") == before
    result = durable("--db", db, "restart", "r1", "--from", "extract", "--dry-run")
    assert "run again  transform-1  Failed  (downstream of extract-1)" in result.output
    result = durable("--db", db, "restart", "r1", "--from", "nope", "--dry-run")
    assert result.exit_code == 2
    assert "Run 'r1' has no task 'nope'; its tasks are: extract-1, transform-1" in (
        result.output
    )


def test_restart_queue_leaves_it_to_a_worker_and_is_in_the_audit_log(
    tmp_path: Path,
) -> None:
    db, flow = tmp_path / "x.db", write_flow(tmp_path, BROKEN_UNTIL_FIXED)
    (tmp_path / "broken").touch()
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 1

    result = durable("--db", db, "restart", "r1", "--queue")

    assert result.exit_code == 0, result.output
    assert "Restart of run r1; queued for a worker" in result.output
    assert "No worker is running on this database" in result.output
    assert rows(db, "SELECT status, rerun, kind FROM scheduled_runs") == [
        ("Scheduled", "restart", "manual")
    ]
    assert ran(tmp_path) == Counter({"extract": 1, "transform": 1})  # nothing ran here
    listed = durable("--db", db, "actions")
    assert listed.exit_code == 0, listed.output
    assert "restart" in listed.output
    assert "queued for a worker" in listed.output


def test_limits_set_list_and_remove(tmp_path: Path) -> None:
    db, flow = tmp_path / "x.db", write_flow(tmp_path, CHAIN)
    assert durable("--db", db, "run", flow).exit_code == 0
    assert "No concurrency limit is set" in durable("--db", db, "limits", "ls").output

    assert durable("--db", db, "limits", "set", "db", "2").exit_code == 0
    assert durable("--db", db, "limits", "ls").output == "db  0/2 in use  (none)\n"
    result = durable("--db", db, "limits", "set", "db", "0")
    assert result.exit_code == 2
    assert "0 is not in the range x>=1" in result.output
    assert durable("--db", db, "limits", "rm", "db").exit_code == 0
    assert rows(db, "SELECT COUNT(*) FROM concurrency_limits") == [(0,)]


def test_resume_and_restart_take_an_executor(tmp_path: Path) -> None:
    db, flow = tmp_path / "x.db", write_flow(tmp_path, BROKEN_UNTIL_FIXED)
    (tmp_path / "broken").touch()
    assert durable("--db", db, "run", flow, "--run-id", "r1").exit_code == 1
    (tmp_path / "broken").unlink()

    bad = durable("--db", db, "resume", "r1", "--executor", "gpu")
    assert bad.exit_code == 2
    assert "gpu" in bad.output
    result = durable("--db", db, "restart", "r1", "--executor", "concurrent:2")
    assert result.exit_code == 0, result.output
    assert ran(tmp_path) == Counter({"extract": 1, "transform": 2})
