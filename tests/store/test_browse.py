"""The TUI's read model (`durable.store.browse`) on databases seeded by running real flows: runs,
run detail, logs, flows, scheduled runs, workers, filters, change detection, and
databases of older schema versions."""

from __future__ import annotations

import hashlib
import json
import pickle
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pendulum
import pytest

from durable import Flow, Parameter, task
from durable.control import trigger
from durable.store import Store
from durable.store.browse import (
    FilterError,
    ModelError,
    ReadModel,
    RunFilter,
    RunRow,
    WorkerRow,
    parse_filter,
)
from durable.store.packaging import package_flow
from durable.store.records import ScheduledRunRecord
from durable.store.schema import APPLICATION_ID, MIGRATIONS
from durable.timesource import FakeTime
from durable.worker import Handle, InProcessLauncher, Worker
from tests.engine.helpers import run_on_fake_time
from tests.worker import flows

START = pendulum.datetime(2026, 1, 1, tz="UTC")
MINUTE = pendulum.duration(minutes=1)


@task
def extract() -> list[int]:
    return [1, 2, 3]


@task
def square(x: int) -> int:
    return x * x


@task(max_retries=2, retry_delay=timedelta(seconds=10))
def load(values: list[int]) -> None:
    raise ValueError("db is locked")


@task
def report(done: None) -> None:
    pass


@task
def greet(who: object) -> str:
    return f"hello {who}"


def etl() -> Flow:
    """extract → square (mapped over 3) → load (fails 3 times) → report."""
    with Flow("etl") as flow:
        report(load(square.map(extract())))
    return flow


def hello() -> Flow:
    with Flow("hello") as flow:
        greet(Parameter("who", default="world"))
    return flow


@dataclass
class Seed:
    """A database with four flow runs (oldest first: etl, hello, hello, ticking), a
    waiting manual run of a paused flow, and a stopped worker."""

    db: Path
    etl: str = ""
    hello_json: str = ""
    hello_pickled: str = ""
    ticking: str = ""
    manual: str = ""
    during: list[RunRow] = field(default_factory=list)
    """What `runs()` showed while the worker held its claim on the ticking run."""
    workers_during: list[WorkerRow] = field(default_factory=list)


class SnapshotLauncher:
    """Runs in-process, then looks at the database before the worker settles the run."""

    def __init__(self, inner: InProcessLauncher, seed: Seed) -> None:
        self.inner, self.seed = inner, seed

    async def launch(self, run: ScheduledRunRecord) -> Handle:
        handle = await self.inner.launch(run)
        with ReadModel(self.seed.db) as model:
            self.seed.during = model.runs()
            self.seed.workers_during = model.workers()
        return handle


async def seed_database(db: Path) -> Seed:
    seed, clock = Seed(db), FakeTime(START)
    seed.etl, seed.hello_json, seed.hello_pickled = (
        "e7a000001",
        "b0b000002",
        "b0b000003",
    )
    await run_on_fake_time(etl(), db, clock, run_id=seed.etl)
    clock.advance(MINUTE)
    await run_on_fake_time(hello(), db, clock, run_id=seed.hello_json)
    clock.advance(MINUTE)
    await run_on_fake_time(
        hello(), db, clock, run_id=seed.hello_pickled, parameters={"who": {1, 2}}
    )
    store = await Store.open(db)
    try:
        ticking = flows.every_minute()
        registration = package_flow(ticking, file=None, registered_at=clock.timestamp())
        await store.register_flow(registration)
        clock.advance(MINUTE)
        launcher = SnapshotLauncher(InProcessLauncher(store, clock), seed)
        await Worker(store, clock, launcher, name="w1", catchup="skip").burst()
        seed.ticking = (await store.list_scheduled_runs())[0].id
        await store.set_paused(ticking.name, paused=True, now=clock.timestamp())
        clock.advance(MINUTE)
        seed.manual = (await trigger(store, ticking.name, {}, time=clock)).run.id
    finally:
        await store.close()
    return seed


@pytest.fixture(scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return await seed_database(tmp_path_factory.mktemp("model") / "durable.db")


@pytest.fixture
async def model(seeded: Seed) -> AsyncIterator[ReadModel]:
    with ReadModel(seeded.db) as opened:
        yield opened


def copy_of(db: Path, to: Path) -> Path:
    """A consistent copy of a database (its WAL included)."""
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(to)) as copy:
        source.backup(copy)
    return to


# Runs ------------------------------------------------------------------------------------
class TestRuns:
    async def test_runs_are_listed_newest_first_with_their_task_counts(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        runs = model.runs()
        assert [r.id for r in runs] == [
            seeded.ticking,
            seeded.hello_pickled,
            seeded.hello_json,
            seeded.etl,
        ]
        etl_run = runs[-1]
        assert (etl_run.flow_name, etl_run.flow_version, etl_run.state) == (
            "etl",
            1,
            "Failed",
        )
        assert dict(etl_run.tasks) == {
            "Success": 4,
            "Mapped": 1,
            "Failed": 1,
            "TriggerFailed": 1,
        }
        assert etl_run.created_at == START.timestamp()
        assert etl_run.started_at is not None
        assert etl_run.ended_at is not None
        assert (etl_run.trigger, etl_run.worker) == (None, None)

    async def test_a_worker_run_shows_its_trigger_and_its_worker_while_claimed(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        during = next(r for r in seeded.during if r.id == seeded.ticking)
        assert (during.trigger, during.worker) == ("schedule", "w1")
        after = model.runs()[0]
        # Once settled the claim is released: the worker is no longer known.
        assert (after.id, after.trigger, after.worker) == (
            seeded.ticking,
            "schedule",
            None,
        )
        assert after.state == "Success"

    async def test_limit_keeps_the_newest(self, seeded: Seed, model: ReadModel) -> None:
        assert [r.id for r in model.runs(limit=2)] == [
            seeded.ticking,
            seeded.hello_pickled,
        ]

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("state:failed", ["etl"]),
            ("state:SUCCESS flow:hello", ["hello", "hello"]),
            ("state:failed|success flow:etl", ["etl"]),
            ("flow:ticking", ["ticking"]),
            ("flow:eTl", []),
            ("ETL", ["etl"]),
            ("ell", ["hello", "hello"]),
            ("ti ng", ["ticking"]),
            ("state:timedout", []),
            ("since:90s", ["ticking"]),
            ("since:1h", ["ticking", "hello", "hello", "etl"]),
            ("%", []),
        ],
    )
    async def test_filters(
        self, model: ReadModel, text: str, expected: list[str]
    ) -> None:
        now = START.timestamp() + 4 * 60
        assert [r.flow_name for r in model.runs(parse_filter(text, now=now))] == (
            expected
        )

    async def test_a_run_id_prefix_finds_the_run(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        found = model.runs(RunFilter(text=seeded.etl[:5]))
        assert seeded.etl in [r.id for r in found]
        assert all(r.id.startswith(seeded.etl[:5]) for r in found)


# Run detail ------------------------------------------------------------------------------
class TestRunDetail:
    async def test_tasks_come_in_graph_order_with_upstream_and_edges(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        detail = model.run(seeded.etl)
        assert detail is not None
        assert [(t.slug, t.map_index, t.state) for t in detail.tasks] == [
            ("extract-1", -1, "Success"),
            ("square-1", -1, "Mapped"),
            ("square-1", 0, "Success"),
            ("square-1", 1, "Success"),
            ("square-1", 2, "Success"),
            ("load-1", -1, "Failed"),
            ("report-1", -1, "TriggerFailed"),
        ]
        upstream = {t.slug: t.upstream for t in detail.tasks}
        assert upstream == {
            "extract-1": (),
            "square-1": ("extract-1",),
            "load-1": ("square-1",),
            "report-1": ("load-1",),
        }
        assert detail.edges == (
            ("extract-1", "square-1"),
            ("square-1", "load-1"),
            ("load-1", "report-1"),
        )
        assert detail.run.tasks == model.runs(RunFilter(flow="etl"))[0].tasks

    async def test_a_retried_task_has_one_span_per_attempt(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        detail = model.run(seeded.etl)
        assert detail is not None
        loaded = next(t for t in detail.tasks if t.slug == "load-1")
        assert (loaded.attempts, loaded.message) == (
            3,
            "Error during execution of task: ValueError('db is locked')",
        )
        assert [s.state for s in loaded.spans] == ["Failed"] * 3
        starts = [s.start - loaded.spans[0].start for s in loaded.spans]
        assert starts == [0.0, 10.0, 20.0]  # retry_delay on the fake clock
        assert all(s.end == s.start for s in loaded.spans)
        report_row = next(t for t in detail.tasks if t.slug == "report-1")
        assert report_row.spans == ()  # never ran

    async def test_events_are_the_state_history_in_order(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        detail = model.run(seeded.etl)
        assert detail is not None
        events = detail.events
        assert [e.id for e in events] == sorted(e.id for e in events)
        assert (events[0].task_slug, events[0].map_index, events[0].name) == (
            None,
            -1,
            "Pending",
        )
        assert (events[-1].task_slug, events[-1].name) == (None, "Failed")
        load_events = [e.name for e in events if e.task_slug == "load-1"]
        assert load_events == ["Running", "Failed", "Retrying"] * 2 + [
            "Running",
            "Failed",
        ]
        assert ("square-1", 2, "Success") in [
            (e.task_slug, e.map_index, e.name) for e in events
        ]

    async def test_json_parameters_are_shown_pretty(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        detail = model.run(seeded.hello_json)
        assert detail is not None
        assert detail.parameters == '{\n  "who": "world"\n}'

    async def test_pickled_parameters_are_never_unpickled(
        self, seeded: Seed, model: ReadModel, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(*args: object, **kwargs: object) -> object:
            raise AssertionError("the read model unpickled something")

        monkeypatch.setattr(pickle, "loads", refuse)
        monkeypatch.setattr(pickle, "load", refuse)
        detail = model.run(seeded.hello_pickled)
        assert detail is not None
        assert detail.parameters.startswith("(pickled, ")
        assert detail.parameters.endswith(" bytes)")

    async def test_an_unknown_run_is_none(self, model: ReadModel) -> None:
        assert model.run("nope") is None


# Logs ------------------------------------------------------------------------------------
class TestLogs:
    async def test_logs_come_oldest_first_and_page_by_id(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        lines = model.logs(seeded.etl)
        assert len(lines) > 5
        assert [line.id for line in lines] == sorted(line.id for line in lines)
        assert model.logs(seeded.etl, after_id=lines[2].id) == lines[3:]
        assert model.logs(seeded.etl, limit=2) == lines[:2]
        errors = [line for line in lines if line.level >= 40]
        assert errors
        assert {line.task_slug for line in errors} >= {"load-1"}
        mapped = [line for line in lines if line.map_index >= 0]
        assert {line.task_slug for line in mapped} == {"square-1"}

    async def test_logs_of_one_task_run(self, seeded: Seed, model: ReadModel) -> None:
        detail = model.run(seeded.etl)
        assert detail is not None
        loaded = next(t for t in detail.tasks if t.slug == "load-1")
        lines = model.logs(seeded.etl, task_run_id=loaded.task_run_id)
        assert lines
        assert {(line.task_slug, line.map_index) for line in lines} == {("load-1", -1)}
        assert any("attempt 3" in line.message for line in lines)

    async def test_a_run_without_logs_has_none(self, model: ReadModel) -> None:
        assert model.logs("nope") == []


# Flows, scheduled runs, workers ----------------------------------------------------------
class TestFlowsSchedulesWorkers:
    async def test_flows_by_name(self, seeded: Seed, model: ReadModel) -> None:
        found = {f.name: f for f in model.flows()}
        assert list(found) == ["etl", "hello", "ticking"]
        etl_flow, hello_flow, ticking = found["etl"], found["hello"], found["ticking"]
        assert (etl_flow.version, etl_flow.registered, etl_flow.schedule) == (
            1,
            False,
            None,
        )
        assert (etl_flow.last_runs, etl_flow.running, etl_flow.next_tick) == (
            ("Failed",),
            0,
            None,
        )
        assert hello_flow.last_runs == ("Success", "Success")
        assert ticking.registered
        assert ticking.paused
        assert ticking.schedule is not None
        assert ticking.schedule.startswith("every minute")
        assert ticking.last_runs == ("Success",)
        assert ticking.next_tick == model.scheduled()[0].scheduled_for  # the manual run
        assert ticking.next_tick is not None
        assert ticking.catchup is None

    async def test_last_runs_keep_the_latest_twenty_oldest_first(
        self, seeded: Seed, tmp_path: Path
    ) -> None:
        db = copy_of(seeded.db, tmp_path / "copy.db")
        with closing(sqlite3.connect(db)) as conn, conn:
            for i in range(25):
                conn.execute(
                    "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, state,"
                    " parameters_serializer, created_at, updated_at) SELECT ?, id,"
                    " name, fingerprint, ?, 'json', ?, ? FROM flows WHERE name = 'etl'",
                    (f"extra{i}", f"S{i}", 10.0**10 + i, 0.0),
                )
        with ReadModel(db) as model:
            etl_flow = next(f for f in model.flows() if f.name == "etl")
        assert etl_flow.last_runs == tuple(f"S{i}" for i in range(5, 25))

    async def test_scheduled_runs_waiting_first_then_the_latest(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        rows = model.scheduled()
        assert [(r.id, r.kind, r.status) for r in rows] == [
            (seeded.manual, "manual", "Scheduled"),
            (seeded.ticking, "schedule", "Finished"),
        ]
        assert rows[1].message == "Success"
        assert rows[1].worker is None  # settled: the claim is released
        assert model.scheduled(flow="etl") == []
        assert [r.id for r in model.scheduled(limit=1)] == [seeded.manual]

    async def test_workers(self, seeded: Seed, model: ReadModel) -> None:
        assert [(w.name, w.running) for w in seeded.workers_during] == [("w1", 1)]
        (worker,) = model.workers()
        assert (worker.name, worker.concurrency, worker.running) == ("w1", 4, 0)
        assert worker.stopped_at is not None  # the burst ended
        assert worker.started_at <= worker.heartbeat_at


# Change detection, read-only -------------------------------------------------------------
class TestPolling:
    async def test_changed_sees_only_other_connections_commits(
        self, seeded: Seed, tmp_path: Path
    ) -> None:
        db = copy_of(seeded.db, tmp_path / "copy.db")
        with ReadModel(db) as model, closing(sqlite3.connect(db)) as writer:
            assert model.changed() is True  # the first call
            assert model.changed() is False
            model.runs()
            assert model.changed() is False  # reading changes nothing
            with writer:
                writer.execute("INSERT INTO flow_settings (name) VALUES ('x')")
            assert model.changed() is True
            assert model.changed() is False

    async def test_an_idle_poll_runs_only_the_data_version_statement(
        self, model: ReadModel
    ) -> None:
        if model.changed():
            model.runs()
        before = model.queries
        for _ in range(5):
            if model.changed():
                model.runs()
        assert model.queries == before + 5

    async def test_no_read_transaction_outlives_a_call(
        self, seeded: Seed, tmp_path: Path
    ) -> None:
        db = copy_of(seeded.db, tmp_path / "copy.db")
        with closing(sqlite3.connect(db)) as writer:
            writer.execute("PRAGMA journal_mode=WAL")
            with ReadModel(db) as model:
                model.runs()
                model.run(seeded.etl)
                model.flows()
                with writer:
                    writer.execute("INSERT INTO flow_settings (name) VALUES ('x')")
                busy, _, _ = writer.execute(
                    "PRAGMA wal_checkpoint(TRUNCATE)"
                ).fetchone()
                assert busy == 0  # no reader pinned an older snapshot

    async def test_reading_never_changes_the_file(
        self, seeded: Seed, tmp_path: Path
    ) -> None:
        db = copy_of(seeded.db, tmp_path / "copy.db")
        before = hashlib.sha256(db.read_bytes()).hexdigest()
        with ReadModel(db) as model:
            model.changed()
            for run in model.runs():
                model.run(run.id)
                model.logs(run.id)
            model.flows()
            model.scheduled()
            model.workers()
        assert hashlib.sha256(db.read_bytes()).hexdigest() == before


# Opening ---------------------------------------------------------------------------------
class TestOpening:
    def test_a_missing_file_says_so(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="No database at"):
            ReadModel(tmp_path / "missing.db")

    def test_a_file_that_is_not_sqlite_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "notes.txt"
        path.write_text("not a database at all, but long enough to look like one" * 20)
        with pytest.raises(ModelError, match="not a durable database"):
            ReadModel(path)

    def test_another_applications_database_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "other.db"
        with closing(sqlite3.connect(path)) as conn:
            conn.execute("CREATE TABLE t (x)")
        with pytest.raises(ModelError, match="not a durable database"):
            ReadModel(path)

    def test_a_newer_schema_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "newer.db"
        with closing(sqlite3.connect(path)) as conn:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
            conn.execute("CREATE TABLE t (x)")
        with pytest.raises(ModelError, match="newer"):
            ReadModel(path)

    async def test_a_closed_model_raises(self, seeded: Seed) -> None:
        model = ReadModel(seeded.db)
        model.close()
        model.close()
        with pytest.raises(ModelError, match="closed"):
            model.runs()


# Older schema versions -------------------------------------------------------------------
def old_database(path: Path, version: int) -> Path:
    """A database as durable's schema `version` left it: one failed run, two task runs
    (the second running), states, a log line, and for v5 its scheduled run."""
    with closing(sqlite3.connect(path)) as conn, conn:
        for script in MIGRATIONS[:version]:
            conn.executescript(script)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version={version}")
        conn.execute(
            "INSERT INTO flows (id, name, version, fingerprint, created_at)"
            " VALUES (1, 'old', 1, 'fp', 1.0)"
        )
        conn.execute(
            "INSERT INTO flow_runs (id, flow_id, flow_name, fingerprint, state,"
            " parameters, parameters_serializer, created_at, started_at, updated_at)"
            " VALUES ('run1', 1, 'old', 'fp', 'Running', ?, 'pickle', 1.0, 2.0, 3.0)",
            (pickle.dumps({"x": 1}),),
        )
        conn.executemany(
            "INSERT INTO task_runs (id, flow_run_id, task_slug, task_name, state,"
            " attempts, updated_at) VALUES (?, 'run1', ?, ?, ?, ?, 3.0)",
            [("t2", "b-1", "b", "Running", 1), ("t1", "a-1", "a", "Success", 1)],
        )
        conn.executemany(
            "INSERT INTO states (flow_run_id, task_run_id, name, timestamp)"
            " VALUES ('run1', ?, ?, ?)",
            [(None, "Running", 2.0), ("t1", "Running", 2.0), ("t1", "Success", 2.5),
             ("t2", "Running", 2.6)],
        )  # fmt: skip
        conn.execute(
            "INSERT INTO logs (flow_run_id, task_run_id, timestamp, level, logger,"
            " message) VALUES ('run1', 't1', 2.1, 20, 'durable', 'hi')"
        )
        if version >= 5:
            conn.execute(
                "INSERT INTO scheduled_runs (id, flow_name, flow_version, scheduled_for,"
                " parameters_hash, parameters, status, created_at, claimed_by)"
                " VALUES ('run1', 'old', 1, 1.0, 'h', x'', 'Running', 1.0, 'w9')"
            )
    return path


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_older_schema_versions_read_without_what_they_lack(
    tmp_path: Path, version: int
) -> None:
    with ReadModel(old_database(tmp_path / "old.db", version)) as model:
        assert model.version == version
        assert model.changed() is True
        (run,) = model.runs(parse_filter("state:running old", now=10.0))
        worker_run = version >= 5
        assert (run.trigger, run.worker) == (
            ("schedule", "w9") if worker_run else (None, None)
        )
        assert dict(run.tasks) == {"Running": 1, "Success": 1}
        detail = model.run("run1")
        assert detail is not None
        # No graph: creation order, no upstream, no edges.
        assert [(t.slug, t.upstream) for t in detail.tasks] == [
            ("b-1", ()),
            ("a-1", ()),
        ]
        assert detail.edges == ()
        assert detail.tasks[0].spans[0].end is None  # still running
        assert detail.parameters.startswith("(pickled, ")
        assert [line.message for line in model.logs("run1")] == ["hi"]
        (flow,) = model.flows()
        assert (flow.name, flow.registered, flow.paused, flow.last_runs) == (
            "old",
            False,
            False,
            ("Running",),
        )
        assert flow.running == 1
        scheduled = model.scheduled()
        assert [(s.kind, s.worker) for s in scheduled] == (
            [("schedule", "w9")] if worker_run else []
        )
        assert model.workers() == []


# The filter ------------------------------------------------------------------------------
class TestParseFilter:
    def test_fields_and_bare_words(self) -> None:
        parsed = parse_filter(
            "State:Failed|timedout flow:etl since:1h foo bar", now=1e4
        )
        assert parsed == RunFilter(
            state=frozenset({"Failed", "TimedOut"}),
            flow="etl",
            since=1e4 - 3600,
            text="foo bar",
        )

    @pytest.mark.parametrize(
        ("span", "seconds"), [("30m", 1800), ("24h", 86400), ("7d", 604800)]
    )
    def test_spans(self, span: str, seconds: float) -> None:
        assert parse_filter(f"since:{span}", now=1e6).since == 1e6 - seconds

    def test_empty_text_is_no_filter(self) -> None:
        assert parse_filter("  ", now=0) == RunFilter()

    def test_an_unknown_field_is_named_with_the_valid_ones(self) -> None:
        with pytest.raises(FilterError) as caught:
            parse_filter("colour:red", now=0)
        assert caught.value.field == "colour"
        assert "'colour'" in str(caught.value)
        assert "state:, flow:, since:" in str(caught.value)

    @pytest.mark.parametrize(
        ("text", "field", "says"),
        [
            ("state:faild", "state", "'faild'"),
            ("since:soon", "since", "since:1h"),
            ("flow:", "flow", "needs a value"),
        ],
    )
    def test_bad_values_say_what_is_wrong(
        self, text: str, field: str, says: str
    ) -> None:
        with pytest.raises(FilterError, match=says) as caught:
            parse_filter(text, now=0)
        assert caught.value.field == field


def test_graph_json_is_what_the_store_wrote(seeded: Seed) -> None:
    with closing(sqlite3.connect(seeded.db)) as conn:
        (graph,) = conn.execute("SELECT graph FROM flows WHERE name = 'etl'").fetchone()
    assert [task[0] for task in json.loads(graph)["tasks"]] == [
        "extract-1",
        "square-1",
        "load-1",
        "report-1",
    ]
