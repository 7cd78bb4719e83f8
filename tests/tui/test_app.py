"""Pilot tests of the app (TUI.md 5.6) on a seeded temporary database, a fixed clock and a
fixed size: areas, drill-down and back, filtering, polling only on change, cancel through
the control API, read-only mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from textual.app import App, ComposeResult

from durable import Flow, signals, task
from durable.engine.flow_runner import run_flow_async
from durable.store import Store
from durable.timesource import FakeTime
from tui.app import DurableApp
from tui.screens import RunDetailScreen, RunsScreen
from tui.widgets import ConfirmModal, FollowLog, VimTable

START = pendulum.datetime(2026, 11, 1, 9, tz="UTC")
SIZE = (120, 40)


@task
def extract() -> int:
    return 1


@task
def load(x: int) -> int:
    if x < 0:
        raise signals.FAIL("negative")
    return x


@task
def broken(x: int) -> int:
    raise ValueError("db lock after 30s")


async def seed(db: Path) -> list[str]:
    """Four runs: three successes and a failure, one minute apart (oldest first)."""
    clock = FakeTime(START)
    store = await Store.open(db)
    ids = []
    try:
        for i in range(4):
            with Flow("etl") as flow:
                x = extract()
                (broken if i == 2 else load)(x)
            run_id = f"run{i}"
            await run_flow_async(flow, store=store, run_id=run_id, time=clock)
            ids.append(run_id)
            clock.advance(pendulum.duration(minutes=1))
    finally:
        await store.close()
    return ids


@pytest.fixture
async def seeded(tmp_path: Path) -> Path:
    db = tmp_path / "tui.db"
    await seed(db)
    return db


def app_for(db: Path, **options: Any) -> DurableApp:
    now = START.add(minutes=10).timestamp()
    return DurableApp(db, refresh=3600, clock=lambda: now, **options)


async def settle(app: DurableApp, pilot: Any) -> None:
    """Let the poll workers finish and the UI apply what they posted."""
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.pause()


def runs_table(app: DurableApp) -> VimTable:
    return app.screen.query_one("#runs", VimTable)


async def test_starts_in_runs_and_area_keys_keep_the_cursor(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        table = runs_table(app)
        await pilot.press("j")
        assert table.selected_key == "run2"  # newest first: run3, run2, ...
        await pilot.press("1")
        await settle(app, pilot)
        assert app.current_mode == "flows"
        await pilot.press("2")
        await settle(app, pilot)
        assert runs_table(app).selected_key == "run2"
        await pilot.press("question_mark")
        await pilot.pause()
        assert app.screen.query("HelpPanel")


async def test_enter_opens_the_run_and_escape_returns_to_the_same_row(
    seeded: Path,
) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("j", "j", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == "run1"
        await settle(app, pilot)
        tasks = app.screen.query_one("#tasks", VimTable)
        assert tasks.row_count == 2
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert runs_table(app).selected_key == "run1"


async def test_a_filter_keeps_matching_rows_and_escape_clears_it(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("slash", *"state:failed", "enter")
        await settle(app, pilot)
        assert runs_table(app).row_count == 1
        assert runs_table(app).selected_key == "run2"
        await pilot.press("escape")
        await settle(app, pilot)
        assert runs_table(app).row_count == 4
        await pilot.press("escape")  # no filter: stays at the root area
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


async def test_an_unchanged_database_is_polled_without_queries(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        screen.poll()  # settles a refresh the start-up may have left pending
        await settle(app, pilot)
        before = app.model.queries
        screen.poll()
        await app.workers.wait_for_complete()
        assert app.model.queries == before + 1  # data_version only

        await seed_more(seeded)  # another connection commits a run
        screen.poll()
        await settle(app, pilot)
        assert runs_table(app).row_count == 5


async def seed_more(db: Path) -> None:
    store = await Store.open(db)
    try:
        with Flow("etl") as flow:
            load(extract())
        await run_flow_async(flow, store=store, run_id="run4", time=FakeTime(START))
    finally:
        await store.close()


async def test_cancel_asks_first_then_calls_the_control_api_once(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    async def cancel(store: Store, run_id: str, *, actor: str) -> Any:
        calls.append(run_id)
        from durable.store.control import CancelOutcome, CancelResult

        return run_id, CancelResult(CancelOutcome.CANCELLED, "Running")

    monkeypatch.setattr("durable.control.cancel", cancel)
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await pilot.press("X")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.targets == ["run3 · etl · Success"]
        await pilot.press("y")
        await settle(app, pilot)
        assert calls == ["run3"]
        assert any("run3 cancelled" in n.message for n in app._notifications)


async def test_read_only_hides_and_refuses_cancel(seeded: Path) -> None:
    app = app_for(seeded, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await pilot.press("X")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        assert app.screen.check_action("cancel_run", ()) is False
        assert "X" not in app.screen.active_bindings


class LogApp(App[None]):
    def compose(self) -> ComposeResult:
        yield FollowLog(id="log")


async def test_a_log_scrolled_up_keeps_its_place_and_counts_new_lines() -> None:
    app = LogApp()
    async with app.run_test(size=SIZE) as pilot:
        log = app.query_one(FollowLog)
        log.append([f"line {i}" for i in range(500)])
        await pilot.pause()
        assert log.is_vertical_scroll_end
        assert log.border_title == "FOLLOW"
        log.scroll_to(y=100, animate=False)
        await pilot.pause()
        log.append([f"new {i}" for i in range(10)])
        await pilot.pause()
        assert log.scroll_y == 100  # the reader keeps their place
        assert log.border_title == "PAUSED +10"
        log.focus()
        await pilot.press("G")
        await pilot.pause()
        assert log.is_vertical_scroll_end
        assert log.border_title == "FOLLOW"
        log.append(["one more"])
        await pilot.pause()
        assert log.is_vertical_scroll_end
        assert log.border_title == "FOLLOW"
