"""Pilot tests of Flow detail, Task run, the Logs area, the table keys every VimTable has
(sort, mark, copy) and the header's badges, on the seeded database of `test_app`."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pendulum
import pytest
from rich.text import Text
from textual.widgets import Static, TabbedContent

from durable import Flow, task
from durable.engine.flow_runner import run_flow_async
from durable.store import Store
from durable.timesource import FakeTime
from tests.tui.test_app import (
    SIZE,
    START,
    app_for,
    extract,
    runs_table,
    seed,
    seed_more,
    settle,
)
from tui.app import DurableApp
from tui.screens import (
    EventsScreen,
    FlowDetailScreen,
    PollingScreen,
    RunDetailScreen,
    RunsScreen,
    TaskRunScreen,
)
from tui.screens.flow_detail import HistoryGrid
from tui.widgets import FollowLog, VimTable

CALLS: dict[str, int] = {}


@pytest.fixture
async def seeded(tmp_path: Path) -> Path:
    db = tmp_path / "tui.db"
    await seed(db)
    return db


@task
def prepare() -> int:
    return 1


@task(max_retries=2, retry_delay=timedelta(0))
def flaky(x: int) -> int:
    CALLS["flaky"] = CALLS.get("flaky", 0) + 1
    if CALLS["flaky"] < 3:
        raise ValueError(f"flaky failure {CALLS['flaky']}")
    return x


async def seed_retries(db: Path) -> None:
    """One run, `retry`, whose flaky task fails twice and then succeeds."""
    CALLS.clear()
    store = await Store.open(db)
    try:
        with Flow("retrying") as flow:
            flaky(prepare())
        clock = FakeTime(START.add(minutes=5))
        await run_flow_async(flow, store=store, run_id="retry", time=clock)
    finally:
        await store.close()


def cell(table: VimTable, row: int, column: int) -> str:
    """The text of one cell (a Text or a str)."""
    value = table.get_row_at(row)[column]
    return value.plain if isinstance(value, Text) else value


def grid_lines(app: DurableApp) -> list[str]:
    return app.screen.query_one(HistoryGrid).render().plain.splitlines()


# Flow detail -----------------------------------------------------------------------------
async def test_enter_on_flows_opens_flow_detail_with_the_runs_in_its_grid(
    seeded: Path,
) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("1")
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, FlowDetailScreen)
        assert screen.flow_name == "etl"
        lines = grid_lines(app)
        # Tasks in the latest version's order, then the one only run2 had; the four
        # runs oldest first, run2 the failed one.
        assert [line.split()[0] for line in lines[2:]] == [
            "extract-1",
            "load-1",
            "broken-1",
        ]
        assert lines[1].split() == ["✓", "✓", "✗", "✓"]
        assert lines[3].split() == ["load-1", "✓", "✓", "✓"]  # none in run2
        assert lines[4].split() == ["broken-1", "✗"]
        header = str(screen.query_one("#header").render())
        assert "etl@v3" in header
        assert "✓3 ✗1 ▶0" in header
        cell = str(screen.query_one("#cell").render())
        assert "run run3" in cell  # the cursor starts on the newest run's state

        await pilot.press("j", "j", "j", "h")  # broken-1 in run2
        cell = str(screen.query_one("#cell").render())
        assert "run run2" in cell
        assert "broken-1 · ✗ Failed" in cell
        assert "db lock after 30s" in cell
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TaskRunScreen)
        assert app.screen.run_id == "run2"
        await pilot.press("escape")
        await pilot.pause()

        await pilot.press("k", "k", "k", "enter")  # run2's state row opens the run
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == "run2"


async def test_flow_detail_tabs_list_its_runs_and_task_durations(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.push_screen(FlowDetailScreen("etl"))
        await settle(app, pilot)
        screen = app.screen
        await pilot.press("right_square_bracket", "right_square_bracket")
        await pilot.pause()
        runs = screen.query_one("#flow-runs", VimTable)
        assert [cell(runs, i, 1) for i in range(runs.row_count)] == [
            "run3",
            "run2",
            "run1",
            "run0",
        ]
        durations = screen.query_one("#durations-table", VimTable)
        rows = [cell(durations, i, 0) for i in range(durations.row_count)]
        assert rows == ["(flow run)", "extract-1", "load-1", "broken-1"]
        await pilot.press("left_square_bracket")
        await pilot.pause()
        dag = str(screen.query_one("#dag").render())
        assert "extract-1" in dag
        assert "load-1" in dag

        await pilot.press("right_square_bracket")  # the tab's table takes the focus
        await pilot.pause()
        assert runs.has_focus
        await pilot.press("j", "enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == "run2"


async def test_an_unknown_flow_says_so(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.push_screen(FlowDetailScreen("nope"))
        await settle(app, pilot)
        assert "No flow nope" in str(app.screen.query_one("#header").render())


# Task run --------------------------------------------------------------------------------
async def test_enter_on_a_task_opens_its_attempts_and_brackets_switch_them(
    seeded: Path,
) -> None:
    await seed_retries(seeded)
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert runs_table(app).selected_key == "retry"  # the newest run
        await pilot.press("enter")
        await settle(app, pilot)
        tasks = app.screen.query_one("#tasks", VimTable)
        await pilot.press("j")
        assert cell(tasks, tasks.cursor_row, 1) == "flaky-1"
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, TaskRunScreen)
        attempts = screen.query_one("#attempts", VimTable)
        states = [cell(attempts, i, 2) for i in range(attempts.row_count)]
        assert states == ["✗ Failed", "✗ Failed", "✓ Success"]
        assert attempts.selected_key == "3"  # the latest attempt
        log = screen.query_one("#task-log", FollowLog)
        assert any("(attempt 3)" in line for line in log.lines)
        assert not any("(attempt 2)" in line for line in log.lines)
        detail = str(screen.query_one("#detail").render())
        assert "attempt 3/3" in detail
        assert "upstream: prepare-1" in detail

        await pilot.press("left_square_bracket")
        await pilot.pause()
        assert attempts.selected_key == "2"
        assert any("(attempt 2)" in line for line in log.lines)
        assert any("flaky failure 2" in line for line in log.lines)
        assert not any("(attempt 3)" in line for line in log.lines)
        assert "flaky failure 2" in str(screen.query_one("#detail").render())
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)


# Logs area -------------------------------------------------------------------------------
async def test_five_opens_the_log_tail_and_a_filter_narrows_it(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        await settle(app, pilot)
        assert app.current_mode == "logs"
        assert isinstance(app.screen, EventsScreen)
        table = app.screen.query_one("#lines", VimTable)
        every = table.row_count
        assert every > 10
        assert table.cursor_row == every - 1  # following the newest line
        runs = {cell(table, i, 3) for i in range(every)}
        assert runs == {"run0", "run1", "run2", "run3"}

        await pilot.press("slash", *"level:error", "enter")
        await settle(app, pilot)
        assert 0 < table.row_count < every
        levels = {cell(table, i, 1) for i in range(table.row_count)}
        assert levels == {"ERROR"}
        assert "filter: level:error" in str(table.border_title)

        await pilot.press("slash", *"run:run1", "enter")
        await settle(app, pilot)
        assert {cell(table, i, 3) for i in range(table.row_count)} == {"run1"}
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == "run1"
        await pilot.press("escape")
        await pilot.pause()
        await pilot.press("escape")  # clears the filter
        await settle(app, pilot)
        assert table.row_count == every


async def test_the_log_tail_follows_new_lines(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("5")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, EventsScreen)
        table = screen.query_one("#lines", VimTable)
        before = table.row_count
        await seed_more(seeded)
        screen.poll()
        await settle(app, pilot)
        assert table.row_count > before
        assert cell(table, table.row_count - 1, 3) == "run4"
        assert table.cursor_row == table.row_count - 1


# Table keys ------------------------------------------------------------------------------
async def test_sorting_keeps_the_cursor_on_its_row_and_survives_updates(
    seeded: Path,
) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = runs_table(app)
        await pilot.press("j")
        assert table.selected_key == "run2"  # the failed run
        await pilot.press("s")  # by state: ✓ Success before ✗ Failed
        assert table.sort_column == 0
        assert table.selected_key == "run2"
        assert table.cursor_row == 3
        assert "sort: State ▲" in str(table.border_subtitle)
        await pilot.press("S")
        assert table.selected_key == "run2"
        assert table.cursor_row == 0
        await pilot.press("s")  # by run id, naturally
        keys = [cell(table, i, 1) for i in range(table.row_count)]
        assert keys == ["run0", "run1", "run2", "run3"]
        assert table.selected_key == "run2"

        await seed_more(seeded)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        screen.poll()
        await settle(app, pilot)
        keys = [cell(table, i, 1) for i in range(table.row_count)]
        assert keys == ["run0", "run1", "run2", "run3", "run4"]
        assert table.selected_key == "run2"
        for _ in range(len(table.columns) - 1):
            await pilot.press("s")
        assert table.sort_column is None  # back to the order given: newest first
        keys = [cell(table, i, 1) for i in range(table.row_count)]
        assert keys == [run.id for run in screen.runs]
        assert table.selected_key == "run2"


async def test_space_marks_rows_and_ctrl_a_marks_all(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = runs_table(app)
        await pilot.press("j", "space")
        assert table.marked_keys == {"run2"}
        assert cell(table, 1, 0).startswith("★ ")
        assert not cell(table, 0, 0).startswith("★")
        await pilot.press("space")
        assert table.marked_keys == set()
        assert not cell(table, 1, 0).startswith("★")
        await pilot.press("ctrl+a")
        assert table.marked_keys == {"run0", "run1", "run2", "run3"}
        screen = app.screen
        assert isinstance(screen, PollingScreen)
        screen.refresh_now()  # marks survive an update
        await settle(app, pilot)
        assert cell(table, 3, 0).startswith("★ ")
        await pilot.press("ctrl+a")
        assert table.marked_keys == set()


async def test_y_copies_the_selected_key(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("j", "y")
        await pilot.pause()
        assert app.clipboard == "run2"
        assert any(n.message == "copied run2" for n in app._notifications)


# Header ----------------------------------------------------------------------------------
async def test_the_header_counts_runs_and_says_when_it_last_polled(
    seeded: Path,
) -> None:
    now = [START.add(minutes=10).timestamp()]
    app = DurableApp(seeded, refresh=3600, clock=lambda: now[0])
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert "0 running · 1 failed(1h)" in app.sub_title
        assert "last poll 0s ago" in app.sub_title
        now[0] += 5
        app._tick()
        assert "last poll 5s ago" in app.sub_title
        screen = app.screen
        assert isinstance(screen, PollingScreen)
        screen.poll()  # settles a refresh the start-up may have left pending
        await settle(app, pilot)
        before = app.model.queries
        screen.poll()  # nothing changed: no count query either
        await settle(app, pilot)
        assert app.model.queries == before + 1
        now[0] += pendulum.duration(hours=1).total_seconds()
        app.action_refresh_now()
        await settle(app, pilot)
        assert "0 running · 0 failed(1h)" in app.sub_title


@task(serializer="json")
def as_json(x: int) -> dict[str, int]:
    return {"rows": x}


async def test_params_result_shows_parameters_and_results_without_unpickling(
    tmp_path: Path,
) -> None:
    db = tmp_path / "results.db"
    store = await Store.open(db)
    try:
        with Flow("stored") as flow:
            as_json(extract())
        await run_flow_async(flow, store=store, run_id="res1", time=FakeTime(START))
    finally:
        await store.close()
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        app.screen.query_one("#tabs", TabbedContent).active = "params"
        await settle(app, pilot)
        table = app.screen.query_one("#results", VimTable)
        cells = {
            str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)]
            for i in range(table.row_count)
        }
        assert cells["as_json-1"][1:] == ["json", "11 B", '{"rows": 1}']
        assert cells["extract-1"][1] == "pickle"
        assert cells["extract-1"][3].startswith("(not shown: unpickling runs code")
        parameters = str(app.screen.query_one("#parameters", Static).render())
        assert parameters.startswith("Parameters\n{}")


async def test_flow_detail_schedule_tab_lists_the_schedule_and_its_runs(
    tmp_path: Path,
) -> None:
    from durable import control
    from durable.store.packaging import package_flow
    from tests.worker.flows import every_minute

    db = tmp_path / "scheduled.db"
    store = await Store.open(db)
    try:
        flow = every_minute("ticking")
        await store.register_flow(package_flow(flow, file=None, registered_at=0))
        triggered = await control.trigger(store, "ticking", {}, time=FakeTime(START))
    finally:
        await store.close()
    app = app_for(db)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        app.push_screen(FlowDetailScreen("ticking"))
        await settle(app, pilot)
        app.screen.query_one("#tabs", TabbedContent).active = "schedule"
        await settle(app, pilot)
        line = str(app.screen.query_one("#schedule-line", Static).render())
        assert line.startswith(
            "Schedule: every minute from 2026-01-01 00:00 UTC · next run"
        )
        table = app.screen.query_one("#flow-scheduled", VimTable)
        assert table.row_count == 1
        row = [str(c) for c in table.get_row_at(0)]
        assert row[0] == "◷ Scheduled"
        assert row[2:4] == ["ticking", "manual"]
        table.move_cursor(row=0)
        assert table.selected_key == triggered.run.id
