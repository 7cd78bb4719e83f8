"""`durable register` and `durable flows`, in-process through click's CliRunner.

Flow files are written to tmp_path with test_cli's helpers; a few tests start fresh
interpreters, because what registration promises (the same flow hashes alike, its copy
loads) matters most in another process.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import anyio
import pendulum
import pytest

from durable import views
from durable.schedules import IntervalSchedule
from durable.store import Store
from durable.store.records import RegisteredFlowRecord
from durable.timesource import SYSTEM_TIME
from tests.cli.test_cli import CHAIN, durable, is_one_line, ran, rows, write_flow
from tests.cli.test_cli import TWO_FLOWS as TWO

NOW = pendulum.datetime(2026, 3, 1, 10, 30, tz="UTC")
HOURLY = IntervalSchedule(
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), interval=timedelta(hours=1)
)

SCHEDULED = """
import pendulum
from durable.schedules import IntervalSchedule


@task
def report():
    ran("report")
    return "sent"


hourly = IntervalSchedule(
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), interval=timedelta(hours=1)
)
with Flow("report", schedule=hourly) as flow:
    report()
"""


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep sys.path (flow files add their folder) and the terminal width our own."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: one row per line


@pytest.fixture
def fixed_now(monkeypatch: pytest.MonkeyPatch) -> pendulum.DateTime:
    """Make the system time source say it is NOW."""
    monkeypatch.setattr(SYSTEM_TIME, "now", lambda: NOW)
    monkeypatch.setattr(SYSTEM_TIME, "timestamp", NOW.timestamp)
    return NOW


def flow_table(output: str) -> dict[str, str]:
    """Parse `durable flows`: each flow's name -> its printed row."""
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines[0].split()[:3] == ["Flow", "Version", "Registered"], output
    return {line.split()[0]: line for line in lines[1:]}


def load_registered(db: Path, name: str) -> RegisteredFlowRecord:
    async def load() -> RegisteredFlowRecord | None:
        store = await Store.open(db)
        try:
            return await store.load_registered_flow(name)
        finally:
            await store.close()

    record = anyio.run(load)
    assert record is not None
    return record


class TestRegister:
    def test_registering_an_unchanged_flow_again_keeps_its_version(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, CHAIN)

        first = durable("--db", db, "register", flow)
        second = durable("--db", db, "register", flow)

        assert first.exit_code == second.exit_code == 0, first.output + second.output
        assert first.output == "Registered flow 'chain' as v1\n"
        assert second.output == "Flow 'chain' unchanged, still v1\n"
        assert rows(db, "SELECT name, version FROM flows") == [("chain", 1)]
        assert ran(tmp_path) == {}  # registering runs nothing

    def test_a_changed_file_registers_the_next_version(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, CHAIN)
        assert durable("--db", db, "register", flow).exit_code == 0
        write_flow(tmp_path, CHAIN.replace("x * 10", "x * 100"))  # same shape

        result = durable("--db", db, "register", flow)

        assert result.exit_code == 0, result.output
        assert result.output == "Registered flow 'chain' as v2\n"
        v1, v2 = rows(db, "SELECT fingerprint FROM flows ORDER BY version")
        assert v1 == v2  # the same shape with other code is still another version

    def test_every_flow_of_a_file_is_registered(self, tmp_path: Path, db: Path) -> None:
        result = durable("--db", db, "register", write_flow(tmp_path, TWO))

        assert result.exit_code == 0, result.output
        assert result.output.splitlines() == [
            "Registered flow 'first' as v1",
            "Registered flow 'second' as v1",
        ]

    def test_flow_picks_one_flow_of_the_file(self, tmp_path: Path, db: Path) -> None:
        flow = write_flow(tmp_path, TWO)

        result = durable("--db", db, "register", flow, "--flow", "second")

        assert result.exit_code == 0, result.output
        assert rows(db, "SELECT name FROM flows") == [("second",)]

    def test_an_unknown_flow_is_a_one_line_error_naming_the_flows(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, TWO)

        result = durable("--db", db, "register", flow, "--flow", "third")

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "'third'" in result.output
        assert "first, second" in result.output
        assert not db.exists()

    def test_a_file_without_flows_is_a_one_line_error(
        self, tmp_path: Path, db: Path
    ) -> None:
        result = durable("--db", db, "register", write_flow(tmp_path, "x = 1\n"))

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "no Flow" in result.output
        assert not db.exists()

    def test_a_flow_that_cannot_be_pickled_is_a_one_line_error_and_none_is_stored(
        self, tmp_path: Path, db: Path
    ) -> None:
        body = TWO + "\nimport threading\n\nwith two:\n    second(threading.Lock())\n"
        body = body.replace("def second():", "def second(lock=None):")

        result = durable("--db", db, "register", write_flow(tmp_path, body))

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "'second' cannot be registered" in result.output
        assert not db.exists()  # 'first' was fine, but nothing is stored

    def test_the_registered_copy_loads_and_runs_as_the_registered_version(
        self, tmp_path: Path, db: Path
    ) -> None:
        assert (
            durable("--db", db, "register", write_flow(tmp_path, CHAIN)).exit_code == 0
        )

        record = load_registered(db, "chain")
        state = record.flow.run(db=db)

        assert state.is_successful()
        assert ran(tmp_path) == {"extract": 1, "transform": 1, "load": 1}
        assert record.flow.fingerprint() == record.fingerprint
        assert rows(
            db, "SELECT f.version, f.registered_at IS NOT NULL, r.state FROM flow_runs r"
            " JOIN flows f ON f.id = r.flow_id"
        ) == [(1, 1, "Success")]  # fmt: skip

    def test_a_run_from_the_file_uses_the_registered_version(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, CHAIN)
        assert durable("--db", db, "register", flow).exit_code == 0

        assert durable("--db", db, "run", flow).exit_code == 0
        again = durable("--db", db, "register", flow)

        assert again.output == "Flow 'chain' unchanged, still v1\n"
        assert rows(db, "SELECT COUNT(*) FROM flows") == [(1,)]


class TestInAnotherProcess:
    def test_registration_is_idempotent_whatever_the_hash_seed(
        self, tmp_path: Path, db: Path
    ) -> None:
        # Tags are a set (their pickled order follows the hash seed); Load is a class
        # of the flow file (cloudpickle gives it a new id on every load).
        path = write_flow(tmp_path, """
            from durable import Task


            class Load(Task):
                def run(self, xs):
                    return len(xs)


            @task(tags=["nightly", "etl", "sales", "eu", "b2b"])
            def extract():
                return [1, 2, 3]


            with Flow("etl") as flow:
                Load()(extract())
            """)  # fmt: skip

        outputs = [run_durable("--db", db, "register", path, seed=s) for s in "12"]

        assert outputs == [
            "Registered flow 'etl' as v1\n",
            "Flow 'etl' unchanged, still v1\n",
        ]

    def test_the_copy_loads_in_a_fresh_process_with_its_sibling_modules(
        self, tmp_path: Path, db: Path
    ) -> None:
        project = tmp_path / "project"
        project.mkdir()
        (project / "scaling.py").write_text("def scale(x):\n    return x * 10\n")
        flow = write_flow(project, """
            from scaling import scale


            @task
            def compute():
                ran("compute")
                return scale(4)


            with Flow("etl") as flow:
                compute()
            """)  # fmt: skip
        assert run_durable("--db", db, "register", flow, seed="1").startswith(
            "Registered"
        )
        script = textwrap.dedent(f"""
            import anyio
            from durable.store import Store

            async def load():
                store = await Store.open({str(db)!r})
                try:
                    return await store.load_registered_flow("etl")
                finally:
                    await store.close()

            record = anyio.run(load)
            state = record.flow.run(db={str(db)!r})
            print(record.flow.fingerprint() == record.fingerprint)
            print([s.result for s in state.result.values()])
            """)  # fmt: skip

        output = run_python(["-c", script], cwd=tmp_path)

        assert output.split() == ["True", "[40]"]
        assert ran(project) == {"compute": 1}


def run_durable(*args: str | Path, seed: str) -> str:
    """Run `python -m durable ARGS` in a fresh interpreter; return what it printed."""
    return run_python(["-m", "durable", *map(str, args)], seed=seed)


def run_python(args: list[str], *, seed: str = "0", cwd: Path | None = None) -> str:
    """Run `python ARGS` in a fresh interpreter; fail on a non-zero exit."""
    env = {**os.environ, "PYTHONHASHSEED": seed, "DURABLE_LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


class TestFlows:
    def test_an_empty_database_prints_one_friendly_line(self, db: Path) -> None:
        async def create() -> None:
            await (await Store.open(db)).close()

        anyio.run(create)

        result = durable("--db", db, "flows")

        assert result.exit_code == 0, result.output
        assert (
            result.output == "No flows yet; register one with: durable register FILE\n"
        )

    def test_a_scheduled_flow_shows_its_schedule_and_next_start(
        self, tmp_path: Path, db: Path, fixed_now: pendulum.DateTime
    ) -> None:
        registered = durable("--db", db, "register", write_flow(tmp_path, SCHEDULED))
        assert registered.exit_code == 0, registered.output

        result = durable("--db", db, "flows")

        assert result.exit_code == 0, result.output
        row = flow_table(result.output)["report"]
        expected = HOURLY.next(1, after=fixed_now)[0]  # what the listing must compute
        assert expected == pendulum.datetime(2026, 3, 1, 11, tz="UTC")
        assert f"yes, {views.when(fixed_now.timestamp())}" in row
        assert "every hour from 2026-01-01 00:00 UTC" in row
        assert views.when(expected.timestamp()) in row
        assert row.split()[1] == "v1"
        assert row.rstrip().endswith("-")  # no run yet

    def test_a_flow_without_schedule_and_one_only_run_are_listed(
        self, tmp_path: Path, db: Path
    ) -> None:
        assert durable("--db", db, "register", write_flow(tmp_path, TWO)).exit_code == 0
        chain = write_flow(tmp_path, CHAIN, "chain.py")
        assert durable("--db", db, "run", chain).exit_code == 0

        table = flow_table(durable("--db", db, "flows").output)

        assert sorted(table) == ["chain", "first", "second"]
        assert table["chain"].split()[:4] == ["chain", "v1", "no", "-"]
        assert "Success" in table["chain"]
        assert table["first"].split()[:3] == ["first", "v1", "yes,"]
        assert table["first"].split()[-3:] == ["-"] * 3  # schedule, next, last run

    def test_a_later_version_that_a_run_made_shows_which_version_is_registered(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, CHAIN)
        assert durable("--db", db, "register", flow).exit_code == 0
        write_flow(tmp_path, CHAIN.replace("load(transform(", "load(("))  # edited
        assert durable("--db", db, "run", flow).exit_code == 0

        row = flow_table(durable("--db", db, "flows").output)["chain"]

        assert row.split()[:3] == ["chain", "v2", "v1,"]

    def test_a_schedule_that_cannot_be_loaded_is_shown_not_fatal(
        self, tmp_path: Path, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        rules = tmp_path / "calendar_rules.py"
        rules.write_text("def always(when):\n    return True\n")
        flow = write_flow(tmp_path, SCHEDULED + textwrap.dedent("""
            from calendar_rules import always
            from durable.schedules import Schedule

            flow.schedule = Schedule(clocks=hourly.clocks, filters=[always])
            """))  # fmt: skip
        assert durable("--db", db, "register", flow).exit_code == 0
        rules.unlink()  # the code moved
        monkeypatch.delitem(sys.modules, "calendar_rules")
        importlib.invalidate_caches()

        result = durable("--db", db, "flows")

        assert result.exit_code == 0, result.output
        row = flow_table(result.output)["report"]
        assert "every hour from 2026-01-01 00:00 UTC (+ 1 filter)" in row
        assert (
            "(cannot load: ModuleNotFoundError: No module named 'calendar_rules')"
            in row
        )
