"""The read model's queries for the Flow detail, Task run and Logs screens and the
header's badge (`flow_history`, `task_run`, `tail`, `counts`), on the database
`test_browse` seeds: an etl run whose load task fails three times, two hello runs, a
ticking run of a paused scheduled flow."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from durable.store.browse import (
    FilterError,
    LogFilter,
    ReadModel,
    RunCounts,
    parse_log_filter,
)
from tests.store.test_browse import START, Seed, copy_of, old_database, seed_database


@pytest.fixture(scope="module")
async def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seed:
    return await seed_database(tmp_path_factory.mktemp("history") / "durable.db")


@pytest.fixture
async def model(seeded: Seed) -> AsyncIterator[ReadModel]:
    with ReadModel(seeded.db) as opened:
        yield opened


# Flow history ----------------------------------------------------------------------------
class TestFlowHistory:
    async def test_tasks_in_graph_order_and_cells_without_mapped_children(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        history = model.flow_history("etl")
        assert history is not None
        assert (history.name, history.version, history.schedule) == ("etl", 1, None)
        assert history.tasks == ("extract-1", "square-1", "load-1", "report-1")
        assert history.edges == (
            ("extract-1", "square-1"),
            ("square-1", "load-1"),
            ("load-1", "report-1"),
        )
        (run,) = history.runs
        assert (run.run.id, run.run.state) == (seeded.etl, "Failed")
        assert dict(run.run.tasks)["Success"] == 4  # counts include mapped children
        assert {slug: c.state for slug, c in run.tasks.items()} == {
            "extract-1": "Success",
            "square-1": "Mapped",
            "load-1": "Failed",
            "report-1": "TriggerFailed",
        }
        load = run.tasks["load-1"]
        assert (load.attempts, load.message) == (
            3,
            "Error during execution of task: ValueError('db is locked')",
        )
        assert load.started_at is not None
        assert load.ended_at is not None
        assert load.ended_at - load.started_at == 20.0  # two retry delays

    async def test_runs_come_oldest_first_and_limit_keeps_the_newest(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        history = model.flow_history("hello")
        assert history is not None
        assert [r.run.id for r in history.runs] == [
            seeded.hello_json,
            seeded.hello_pickled,
        ]
        newest = model.flow_history("hello", limit=1)
        assert newest is not None
        assert [r.run.id for r in newest.runs] == [seeded.hello_pickled]

    async def test_a_scheduled_flow_shows_its_schedule_pause_and_next_tick(
        self, model: ReadModel
    ) -> None:
        history = model.flow_history("ticking")
        assert history is not None
        assert history.schedule is not None
        assert history.schedule.startswith("every minute")
        assert history.paused
        assert history.next_tick == model.scheduled()[0].scheduled_for

    async def test_an_unknown_flow_is_none(self, model: ReadModel) -> None:
        assert model.flow_history("nope") is None

    async def test_the_runs_are_found_through_the_flow_index(
        self, model: ReadModel
    ) -> None:
        plan = model._fetch(
            f"EXPLAIN QUERY PLAN {model._sql.flow_runs}", ("etl", 50)
        )  # a seek on flow_runs_by_flow that yields rows in order: no sort
        details = " ".join(row[3] for row in plan)
        assert "USING INDEX flow_runs_by_flow (flow_name=?)" in details
        assert "TEMP B-TREE" not in details

    async def test_slugs_outside_the_graph_follow_it(
        self, seeded: Seed, tmp_path: Path
    ) -> None:
        db = copy_of(seeded.db, tmp_path / "copy.db")
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute(
                "INSERT INTO task_runs (id, flow_run_id, task_slug, task_name, state,"
                " updated_at) VALUES ('x', ?, 'gone-1', 'gone', 'Success', 0)",
                (seeded.etl,),
            )
        with ReadModel(db) as model:
            history = model.flow_history("etl")
        assert history is not None
        assert history.tasks[-1] == "gone-1"


# Task run --------------------------------------------------------------------------------
class TestTaskRun:
    async def test_a_retried_task_run_has_its_attempts_history_and_neighbours(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        detail = model.run(seeded.etl)
        assert detail is not None
        load = next(t for t in detail.tasks if t.slug == "load-1")
        found = model.task_run(seeded.etl, load.task_run_id)
        assert found is not None
        assert found.task == load
        assert (found.run.id, found.run.flow_name) == (seeded.etl, "etl")
        assert [e.name for e in found.events] == [
            "Running",
            "Failed",
            "Retrying",
        ] * 2 + [
            "Running",
            "Failed",
        ]
        assert {e.task_slug for e in found.events} == {"load-1"}
        assert found.events[1].message == load.message
        assert (found.task.upstream, found.downstream) == (("square-1",), ("report-1",))

    async def test_a_task_run_of_another_run_is_none(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        detail = model.run(seeded.etl)
        assert detail is not None
        assert model.task_run(seeded.hello_json, detail.tasks[0].task_run_id) is None
        assert model.task_run(seeded.etl, "nope") is None


# The log tail ----------------------------------------------------------------------------
class TestTail:
    async def test_the_tail_spans_runs_oldest_first_with_flow_names(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        lines = model.tail()
        assert [line.id for line in lines] == sorted(line.id for line in lines)
        assert {line.flow_name for line in lines} == {"etl", "hello", "ticking"}
        assert {line.flow_run_id for line in lines} >= {seeded.etl, seeded.ticking}
        newest = model.tail(limit=3)
        assert newest == lines[-3:]
        assert model.tail(after_id=lines[-2].id) == lines[-1:]

    @pytest.mark.parametrize(
        ("text", "flows", "lowest"),
        [
            ("flow:hello", {"hello"}, 20),
            ("level:warning", {"etl"}, 30),
            ("level:40", {"etl"}, 40),
            ("flow:etl level:error locked", {"etl"}, 40),
            ("ValueError(", {"etl"}, 40),
            ("flow:nope", set(), 0),
            ("Task%'load'", set(), 0),  # % and _ are literal
            ("Task_'load'", set(), 0),
        ],
    )
    async def test_filters(
        self, model: ReadModel, text: str, flows: set[str], lowest: int
    ) -> None:
        lines = model.tail(parse_log_filter(text))
        assert {line.flow_name for line in lines} == flows
        assert all(line.level >= lowest for line in lines)

    async def test_a_run_filter_keeps_that_runs_lines(
        self, seeded: Seed, model: ReadModel
    ) -> None:
        lines = model.tail(LogFilter(run=seeded.hello_json))
        assert lines
        assert {line.flow_run_id for line in lines} == {seeded.hello_json}
        assert [line.message for line in lines] == [
            line.message for line in model.logs(seeded.hello_json)
        ]

    async def test_text_matches_case_insensitively_and_literally(
        self, model: ReadModel
    ) -> None:
        lines = model.tail(parse_log_filter("DB IS LOCKED"))
        assert lines
        assert all("db is locked" in line.message for line in lines)


class TestParseLogFilter:
    def test_fields_and_words(self) -> None:
        assert parse_log_filter("flow:etl Level:Warning run:r1 a: b") == LogFilter(
            flow="etl", run="r1", level=30, text=("a:", "b")
        )
        assert parse_log_filter("level:15") == LogFilter(level=15)
        assert parse_log_filter("  ") == LogFilter()

    @pytest.mark.parametrize(
        ("text", "field", "says"),
        [("level:loud", "level", "'loud'"), ("flow:", "flow", "needs a value")],
    )
    def test_bad_values_say_what_is_wrong(
        self, text: str, field: str, says: str
    ) -> None:
        with pytest.raises(FilterError, match=says) as caught:
            parse_log_filter(text)
        assert caught.value.field == field


# The header's counts ---------------------------------------------------------------------
class TestCounts:
    async def test_failed_counts_runs_that_ended_failed_since(
        self, model: ReadModel
    ) -> None:
        since = START.timestamp()
        assert model.counts(since) == RunCounts(running=0, failed=1)
        assert model.counts(since + 3600) == RunCounts(running=0, failed=0)

    async def test_running_counts_active_runs(
        self, seeded: Seed, tmp_path: Path
    ) -> None:
        db = copy_of(seeded.db, tmp_path / "copy.db")
        with closing(sqlite3.connect(db)) as conn, conn:
            conn.execute("UPDATE flow_runs SET state = 'Running' WHERE id = ?",
                         (seeded.hello_json,))  # fmt: skip
        with ReadModel(db) as model:
            assert model.counts(START.timestamp()).running == 1


@pytest.mark.parametrize("version", [1, 3, 5])
def test_older_schema_versions_read_history_task_runs_and_the_tail(
    tmp_path: Path, version: int
) -> None:
    with ReadModel(old_database(tmp_path / "old.db", version)) as model:
        history = model.flow_history("old")
        assert history is not None
        assert (history.tasks, history.edges, history.schedule) == (
            ("b-1", "a-1"),
            (),
            None,
        )
        found = model.task_run("run1", "t1")
        assert found is not None
        assert (found.task.slug, found.downstream) == ("a-1", ())
        assert [line.message for line in model.tail()] == ["hi"]
        assert model.counts(0.0) == RunCounts(running=1, failed=0)
