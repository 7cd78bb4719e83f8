"""`durable trigger`, `backfill`, `schedule pause|resume|runs`, `cancel` and `workers`,
in-process through click's CliRunner.

The commands read the system time source; here it follows a fake clock that the tests
also hand to an in-process worker, so "now", downtime and due ticks are exact. Flow
files are written to tmp_path with test_cli's helpers and registered with
`durable register`.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pendulum
import pytest

from durable import Flow, task, views
from durable.engine import flow_runner
from durable.engine.cancel import CancelWatch
from durable.liveness import process_token
from durable.states import Cancelled, State
from durable.store import Store
from durable.store.schema import APPLICATION_ID, MIGRATIONS
from durable.timesource import SYSTEM_TIME, FakeTime
from durable.worker import InProcessLauncher, Worker
from durable.worker.ticks import parameters_hash, run_id_for
from tests.cli.test_cli import CHAIN, durable, is_one_line, ran, rows, write_flow
from tests.cli.test_register import SCHEDULED

T0 = pendulum.datetime(2026, 3, 1, 5, 30, tz="UTC")
"""When each test starts: the hourly schedule's next tick is 06:00."""

HOUR = timedelta(hours=1)

PARAM = """
@task
def show(n):
    ran(f"n={n}")
    return n


with Flow("param") as flow:
    show(Parameter("n"))
"""

GATE = """
from durable import triggers


@task
def before():
    ran("before")
    return 1


@task(trigger=triggers.manual_only)
def gated(x):
    ran("gated")
    return x


with Flow("gate") as flow:
    gated(before())
"""


class _CurrentStderr(logging.Handler):
    """A console handler that writes to whatever sys.stderr is when a record comes."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


@pytest.fixture(autouse=True)
def _isolated_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep each test's console, sys.path and terminal width its own (as test_cli)."""
    monkeypatch.setattr(logging.getLogger("durable"), "handlers", [_CurrentStderr()])
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("COLUMNS", "200")  # rich tables: one row per line


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeTime:
    """A fake clock at T0 that the CLI's system time source follows."""
    fake = FakeTime(T0)
    monkeypatch.setattr(SYSTEM_TIME, "now", fake.now)
    monkeypatch.setattr(SYSTEM_TIME, "timestamp", fake.timestamp)
    return fake


def work(db: Path, clock: FakeTime, *, claim: bool = True, **options: Any) -> None:
    """One worker pass on the fake clock, running claimed runs in this process.

    With `claim=False` the pass records ticks and marks Late runs but claims nothing.
    """

    async def one_pass() -> None:
        store = await Store.open(db)
        try:
            worker = Worker(store, clock, InProcessLauncher(store, clock), **options)
            worker.stopping = not claim
            await worker.run_once()
        finally:
            await store.close()

    anyio.run(one_pass)


def ok(*args: str | Path) -> str:
    """Run `durable ARGS`, require exit 0, and return what it printed to stdout."""
    result = durable(*args)
    assert result.exit_code == 0, result.output
    return result.stdout


def register(db: Path, tmp_path: Path, body: str, name: str) -> None:
    ok("--db", db, "register", write_flow(tmp_path, body, name))


def scheduled_runs(db: Path) -> list[tuple[Any, ...]]:
    """(time as HH:MM, kind, status, message) of every scheduled run, oldest first."""
    return [
        (pendulum.from_timestamp(at, tz="UTC").format("HH:mm"), kind, status, message)
        for at, kind, status, message in rows(
            db,
            "SELECT scheduled_for, kind, status, message FROM scheduled_runs"
            " ORDER BY scheduled_for, kind DESC",
        )
    ]


def at(hour: int) -> float:
    return T0.replace(hour=hour, minute=0).timestamp()


# trigger ------------------------------------------------------------------------------
class TestTrigger:
    def test_a_triggered_run_is_run_by_a_worker_with_its_parameters(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, PARAM, "param.py")

        result = durable("--db", db, "trigger", "param", "-p", "n=5")

        assert result.exit_code == 0, result.output
        run_id = rows(db, "SELECT id FROM scheduled_runs")[0][0]
        assert result.stdout == f"Triggered run {run_id} of flow 'param' v1\n"
        assert "No worker is running on this database" in result.stderr
        assert scheduled_runs(db) == [
            ("05:30", "manual", "Scheduled", "triggered (durable trigger)")
        ]
        work(db, clock)
        assert ran(tmp_path) == {"n=5": 1}
        assert scheduled_runs(db) == [("05:30", "manual", "Finished", "Success")]
        assert rows(db, "SELECT id, state FROM flow_runs") == [(run_id, "Success")]

    @pytest.mark.parametrize(
        ("args", "expected"),
        [
            (["param", "-p", "n=1", "-p", "bogus=2"], "has no parameter(s) 'bogus'"),
            (["param"], "is missing required parameter(s) 'n'"),
            (["param", "-p", "n"], "--param takes NAME=VALUE, not 'n'"),
            (["nope"], "No registered flow 'nope'"),
            (["param", "--version", "2"], "No registered version 2 of flow 'param'"),
        ],
    )
    def test_bad_input_is_a_one_line_error_that_records_nothing(
        self, tmp_path: Path, db: Path, args: list[str], expected: str
    ) -> None:
        register(db, tmp_path, PARAM, "param.py")

        result = durable("--db", db, "trigger", *args)

        assert result.exit_code == 2, result.output
        assert is_one_line(result), result.output
        assert expected in result.output
        assert rows(db, "SELECT COUNT(*) FROM scheduled_runs") == [(0,)]

    def test_a_trigger_during_downtime_does_not_hide_the_missed_ticks(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(3 * HOUR)  # 08:30: no worker ran since 05:30
        ok("--db", db, "trigger", "report")

        work(db, clock, claim=False, catchup="skip", late_after=HOUR)

        skipped = "missed tick skipped by catchup policy 'skip'"
        assert scheduled_runs(db) == [
            ("06:00", "schedule", "Skipped", skipped),
            ("07:00", "schedule", "Skipped", skipped),
            ("08:00", "schedule", "Scheduled", None),
            ("08:30", "manual", "Scheduled", "triggered (durable trigger)"),
        ]
        work(db, clock, catchup="skip")
        assert [status for _, _, status, _ in scheduled_runs(db)] == [
            "Skipped", "Skipped", "Finished", "Finished",
        ]  # fmt: skip
        assert ran(tmp_path) == {"report": 2}


# backfill -----------------------------------------------------------------------------
class TestBackfill:
    def test_a_backfill_creates_new_ticks_and_runs_skipped_ones_but_not_finished(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(5 * HOUR)  # 10:30
        work(db, clock, catchup="skip")  # 06:00-09:00 Skipped, 10:00 ran
        window = ["--start", "2026-03-01T03:00", "--end", "2026-03-01T10:00"]
        args: list[str | Path] = ["--db", db, "backfill", "report", *window]

        first = ok(*args)

        span = "2026-03-01T03:00:00Z to 2026-03-01T10:00:00Z"
        assert first == (
            f"Backfill of flow 'report' from {span}: 8 ticks; 3 new, 4 skipped "
            "before and now scheduled, 1 already ran or waiting\n"
        )
        assert scheduled_runs(db) == [
            *[(f"0{h}:00", "backfill", "Scheduled", "backfill") for h in (3, 4, 5)],
            *[
                (f"0{h}:00", "schedule", "Scheduled", "backfilled")
                for h in range(6, 10)
            ],
            ("10:00", "schedule", "Finished", "Success"),
        ]
        ids = rows(db, "SELECT scheduled_for, id FROM scheduled_runs ORDER BY 1")
        unique = parameters_hash({})
        assert [i for _, i in ids] == [
            run_id_for("report", 1, when, unique) for when, _ in ids
        ]
        assert ok(*args).endswith(
            ": 8 ticks; 0 new, 0 skipped before and now scheduled, 8 already ran or "
            "waiting\n"
        )
        assert rows(db, "SELECT COUNT(*) FROM scheduled_runs") == [(8,)]

        work(db, clock, claim=False)  # a pass: backfilled runs are never Late
        assert [s for _, _, s, _ in scheduled_runs(db)] == ["Scheduled"] * 7 + [
            "Finished"
        ]
        work(db, clock, concurrency=10)
        assert [(s, m) for _, _, s, m in scheduled_runs(db)] == [
            ("Finished", "Success")
        ] * 8
        assert ran(tmp_path) == {"report": 8}

    def test_a_tick_recorded_by_an_older_version_counts_as_existing(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(2 * HOUR)  # 07:30
        work(db, clock, catchup="skip")  # v1: 06:00 Skipped, 07:00 ran
        register(db, tmp_path, SCHEDULED + "\n# edited\n", "report.py")
        assert rows(db, "SELECT MAX(version) FROM flows") == [(2,)]

        out = ok("--db", db, "backfill", "report", "--start", "2026-03-01T06:00",
                 "--end", "2026-03-01T07:00")  # fmt: skip

        assert out.endswith(
            ": 2 ticks; 0 new, 1 skipped before and now scheduled, 1 already ran or "
            "waiting\n"
        )
        assert rows(
            db, "SELECT flow_version, status FROM scheduled_runs ORDER BY scheduled_for"
        ) == [(1, "Scheduled"), (1, "Finished")]

    @pytest.mark.parametrize(
        ("flow", "start", "end", "expected"),
        [
            ("report", "2026-03-01T09:00", "2026-03-01T11:00", "is in the future"),
            ("report", "2026-03-01T09:00", "2026-03-01T08:00", "is before --start"),
            ("report", "last tuesday", "2026-03-01T08:00", "is not a date or time"),
            ("report", "2026-03-01T08:00", "soon", "is not a date or time"),
            ("param", "2026-03-01T01:00", "2026-03-01T02:00", "has no registered"),
            ("nope", "2026-03-01T01:00", "2026-03-01T02:00", "has no registered"),
        ],
    )
    def test_bad_ranges_and_flows_are_one_line_errors_that_record_nothing(
        self, tmp_path: Path, db: Path, clock: FakeTime, flow: str, start: str,
        end: str, expected: str,
    ) -> None:  # fmt: skip
        register(db, tmp_path, SCHEDULED, "report.py")
        register(db, tmp_path, PARAM, "param.py")
        clock.advance(5 * HOUR)  # 10:30

        result = durable("--db", db, "backfill", flow, "--start", start, "--end", end)

        assert result.exit_code == 2, result.output
        assert is_one_line(result), result.output
        assert expected in result.output
        assert rows(db, "SELECT COUNT(*) FROM scheduled_runs") == [(0,)]

    def test_a_dry_run_lists_the_ticks_and_records_nothing(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(5 * HOUR)

        out = ok("--db", db, "backfill", "report", "--start", "2026-03-01T01:30",
                 "--end", "2026-03-01T03:00", "--dry-run")  # fmt: skip

        lines = out.splitlines()
        assert lines[0].endswith(": 2 ticks (dry run; nothing recorded)")
        assert [line.strip() for line in lines[1:]] == [
            views.when(at(h)) for h in (2, 3)
        ]
        assert rows(db, "SELECT COUNT(*) FROM scheduled_runs") == [(0,)]


# schedule pause|resume|runs -----------------------------------------------------------
def flow_row(db: Path, name: str) -> str:
    out = ok("--db", db, "flows")
    [line] = [line for line in out.splitlines() if line.split()[:1] == [name]]
    return line


class TestPauseAndResume:
    def test_ticks_while_paused_are_skipped_and_never_run_late_on_resume(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(HOUR)  # 06:30
        work(db, clock)  # 06:00 runs

        paused = ok("--db", db, "schedule", "pause", "report")

        assert paused == (
            "Paused the schedule of flow 'report'. Resume with: durable schedule "
            "resume report\n"
        )
        assert "(paused)" in flow_row(db, "report")
        clock.advance(HOUR)  # 07:30
        work(db, clock, catchup="all")  # 07:00 is recorded, not run
        clock.advance(2 * HOUR)  # 09:30, no worker since 07:30

        resumed = ok("--db", db, "schedule", "resume", "report")

        assert resumed == (
            "Resumed the schedule of flow 'report'; 2 ticks missed while paused "
            "recorded as Skipped\n"
        )
        assert "(paused)" not in flow_row(db, "report")
        work(db, clock, catchup="all")
        assert scheduled_runs(db) == [
            ("06:00", "schedule", "Finished", "Success"),
            *[
                (f"0{h}:00", "schedule", "Skipped", "schedule paused")
                for h in (7, 8, 9)
            ],
        ]
        assert ran(tmp_path) == {"report": 1}
        clock.advance(HOUR)  # 10:30
        work(db, clock)
        assert scheduled_runs(db)[-1] == ("10:00", "schedule", "Finished", "Success")
        assert ran(tmp_path) == {"report": 2}
        listed = ok("--db", db, "schedule", "runs", "report", "--status", "Skipped")
        assert listed.count("schedule paused") == 3
        assert "Success" not in listed

    def test_a_pause_skips_waiting_ticks_but_not_triggered_runs(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(HOUR)  # 06:30
        work(db, clock, claim=False, late_after=HOUR)  # 06:00 waits
        ok("--db", db, "trigger", "report")

        paused = ok("--db", db, "schedule", "pause", "report")

        assert paused.startswith(
            "Paused the schedule of flow 'report'; 1 waiting runs skipped."
        )
        work(db, clock)
        assert scheduled_runs(db) == [
            ("06:00", "schedule", "Skipped", "schedule paused"),
            ("06:30", "manual", "Finished", "Success"),
        ]
        assert ran(tmp_path) == {"report": 1}

    def test_resuming_a_schedule_that_is_not_paused_leaves_catchup_to_the_worker(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, SCHEDULED, "report.py")
        clock.advance(3 * HOUR)  # 08:30, no worker ran

        ok("--db", db, "schedule", "resume", "report")
        work(db, clock, catchup="skip")

        assert [status for _, _, status, _ in scheduled_runs(db)] == [
            "Skipped", "Skipped", "Finished",
        ]  # fmt: skip
        assert ran(tmp_path) == {"report": 1}

    def test_pausing_a_flow_without_a_schedule_is_a_one_line_error(
        self, tmp_path: Path, db: Path
    ) -> None:
        register(db, tmp_path, PARAM, "param.py")

        result = durable("--db", db, "schedule", "pause", "param")

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "Flow 'param' has no registered schedule" in result.output
        assert rows(db, "SELECT COUNT(*) FROM flow_settings") == [(0,)]


# cancel -------------------------------------------------------------------------------
class EagerWatch(CancelWatch):
    """Reads the store at every task boundary (FlowRunner's poll would be 0.5 s)."""

    def __init__(self, store: Store, run_id: str, **_: object) -> None:
        super().__init__(store, run_id, poll=0)


def task_states(db: Path, run_id: str) -> dict[str, str]:
    return dict(
        rows(db, "SELECT task_slug, state FROM task_runs WHERE flow_run_id = ?", run_id)
    )


class TestCancel:
    def test_a_waiting_run_is_cancelled_and_never_run(
        self, tmp_path: Path, db: Path, clock: FakeTime
    ) -> None:
        register(db, tmp_path, PARAM, "param.py")
        ok("--db", db, "trigger", "param", "-p", "n=1")
        [(run_id,)] = rows(db, "SELECT id FROM scheduled_runs")

        out = ok("--db", db, "cancel", run_id)

        assert out == (
            f"Cancelled run {run_id} (it was Scheduled; nothing was running it)\n"
        )
        work(db, clock)
        assert scheduled_runs(db) == [
            ("05:30", "manual", "Cancelled", "cancelled before it started")
        ]
        assert rows(db, "SELECT COUNT(*) FROM flow_runs") == [(0,)]
        assert ran(tmp_path) == {}

    def test_a_paused_run_is_cancelled_on_the_spot_with_its_unfinished_task_runs(
        self, tmp_path: Path, db: Path
    ) -> None:
        flow = write_flow(tmp_path, GATE, "gate.py")
        ok("--db", db, "run", flow, "--run-id", "p1")  # pauses; this process lives on
        assert rows(db, "SELECT state FROM flow_runs") == [("Paused",)]

        out = ok("--db", db, "cancel", "p1")

        assert out == "Cancelled run p1 (it was Paused; nothing was running it)\n"
        assert rows(db, "SELECT state, cancel_requested_at FROM flow_runs") == [
            ("Cancelled", None)
        ]
        assert task_states(db, "p1") == {"before-1": "Success", "gated-1": "Cancelled"}
        assert ran(tmp_path) == {"before": 1}

    def test_an_ended_run_exits_1_and_is_left_alone(
        self, tmp_path: Path, db: Path
    ) -> None:
        ok("--db", db, "run", write_flow(tmp_path, CHAIN), "--run-id", "r1")

        result = durable("--db", db, "cancel", "r1")

        assert result.exit_code == 1
        assert result.output == (
            "Error: Run r1 has already ended (Success); nothing to cancel\n"
        )
        assert rows(db, "SELECT state, cancel_requested_at FROM flow_runs") == [
            ("Success", None)
        ]

    def test_an_unknown_run_is_a_one_line_error(self, tmp_path: Path, db: Path) -> None:
        ok("--db", db, "run", write_flow(tmp_path, CHAIN), "--run-id", "r1")

        result = durable("--db", db, "cancel", "nope")

        assert result.exit_code == 2
        assert is_one_line(result), result.output
        assert "'nope'" in result.output

    def test_a_running_run_is_asked_to_stop_and_ends_at_its_next_task_boundary(
        self, db: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(flow_runner, "CancelWatch", EagerWatch)
        entered, release, calls = threading.Event(), threading.Event(), list[str]()

        @task
        def first() -> int:
            calls.append("first")
            return 1

        @task
        def held(x: int) -> int:
            calls.append("held")
            entered.set()
            assert release.wait(10)
            return x

        @task
        def last(x: int) -> int:
            calls.append("last")
            return x

        with Flow("held") as flow:
            last(held(first()))
        outcome: list[State] = []
        runner = threading.Thread(
            target=lambda: outcome.append(flow.run(db=db, run_id="r1"))
        )
        runner.start()
        try:
            assert entered.wait(10)
            result = durable("--db", db, "cancel", "r1")
        finally:
            release.set()
            runner.join(10)

        assert result.exit_code == 0, result.output
        assert result.stdout == (
            "Asked run r1 to stop: it ends Cancelled after the task runs it has "
            "started\n"
        )
        [state] = outcome
        assert isinstance(state, Cancelled)
        assert calls == ["first", "held"]
        assert task_states(db, "r1") == {
            "first-1": "Success", "held-1": "Success", "last-1": "Cancelled",
        }  # fmt: skip
        assert rows(db, "SELECT state, cancel_requested_at FROM flow_runs") == [
            ("Cancelled", None)
        ]
        restarted = flow.run(db=db, run_id="r1", restart=True)
        assert restarted.is_successful()
        assert calls == ["first", "held", "last"]


# workers ------------------------------------------------------------------------------
def worker_table(output: str) -> dict[str, list[str]]:
    """Parse `durable workers`: name -> [status, pid, runs]."""
    lines = [line.split() for line in output.splitlines() if line.strip()]
    assert lines[0][:4] == ["Worker", "Status", "Pid", "Runs"], output
    return {line[0]: line[1:4] for line in lines[1:]}


def test_workers_shows_running_stopped_and_dead_workers(
    tmp_path: Path, db: Path, clock: FakeTime
) -> None:
    register(db, tmp_path, SCHEDULED, "report.py")
    gone = 2**22 + 12345  # no such process: a worker that died without stopping

    async def workers() -> None:
        store = await Store.open(db)
        try:
            stopped = Worker(store, clock, InProcessLauncher(store, clock), name="done")
            await stopped.burst()
            alive = Worker(store, clock, InProcessLauncher(store, clock), name="busy")
            await alive.run_once()
            await store.register_worker(
                "ghost", pid=gone, pid_started=process_token(os.getpid()),
                concurrency=2, now=clock.timestamp(),
            )  # fmt: skip
        finally:
            await store.close()

    anyio.run(workers)

    table = worker_table(ok("--db", db, "workers"))
    me = str(os.getpid())
    assert table == {
        "done": ["stopped", me, "0/4"],
        "busy": ["running", me, "0/4"],
        "ghost": ["dead", str(gone), "0/2"],
    }


def test_workers_on_a_database_no_worker_used_prints_a_hint(db: Path) -> None:
    async def create() -> None:
        await (await Store.open(db)).close()

    anyio.run(create)

    out = ok("--db", db, "workers")

    assert out == "No worker has run on this database; start one with: durable worker\n"


# older databases ----------------------------------------------------------------------
@pytest.fixture
def version_5_db(tmp_path: Path) -> Iterator[Path]:
    """A database written by durable at schema version 5, with one finished tick."""
    path = tmp_path / "v5.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.executescript("BEGIN;" + "".join(MIGRATIONS[:5]) + "COMMIT;")
        conn.execute(
            "INSERT INTO scheduled_runs (id, flow_name, flow_version, scheduled_for,"
            " parameters_hash, parameters, status, message, created_at)"
            " VALUES ('s-old', 'old', 1, ?, 'h', x'80', 'Finished', 'Success', 0.0)",
            (at(6),),
        )
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute("PRAGMA user_version = 5")
        conn.commit()
    yield path
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (5,)  # not migrated


def test_listings_read_a_version_5_database_without_migrating_it(
    version_5_db: Path,
) -> None:
    runs = ok("--db", version_5_db, "schedule", "runs").splitlines()
    assert runs[1].split()[:5] == ["s-old", "old", "v1", "schedule", "2026-03-01"]
    assert "Finished" in runs[1]
    assert ok("--db", version_5_db, "workers").startswith("No worker has run")
    assert ok("--db", version_5_db, "flows").startswith("No flows yet")
