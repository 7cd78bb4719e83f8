"""Pilot tests of the app's actions (TUI.md 5.6 items 6 and 9): the Restart modal and its
dry-run preview, the trigger form, approving a paused task, the command palette and
read-only mode. The control API is replaced by recorders; what it does is tested in
tests/test_control*."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
import pytest
from textual.command import CommandPalette
from textual.widgets import DataTable, Input

from durable import Flow, Parameter, control, task, triggers
from durable.control import Requeued, Triggered
from durable.engine.flow_runner import run_flow_async
from durable.errors import DurableError
from durable.store import Store
from durable.store.packaging import package_flow
from durable.timesource import FakeTime
from tests.tui.test_app import SIZE, START, app_for, settle
from tui.modals import ActionLogScreen, RestartModal, TriggerForm, parse_value
from tui.screens import FlowsScreen, RunDetailScreen, RunsScreen
from tui.widgets import ConfirmModal, VimTable


@task
def extract() -> int:
    return 1


@task
def a_fail(x: int) -> int:
    raise ValueError("a broke")


@task
def b_fail(x: int) -> int:
    raise ValueError("b broke")


@task
def a_down(x: int) -> int:
    return x


@task
def b_down(x: int) -> int:
    return x


@task
def ok(x: int) -> int:
    return x


@task(trigger=triggers.manual_only)
def approve_me() -> str:
    return "approved"


@task
def add(rows: int, target: str) -> str:
    return f"{rows} {target}"


def branches() -> Flow:
    """extract → a_fail → a_down, extract → b_fail → b_down, extract → ok."""
    with Flow("branches") as flow:
        x = extract()
        a_down(a_fail(x))
        b_down(b_fail(x))
        ok(x)
    return flow


def paused() -> Flow:
    with Flow("gated") as flow:
        approve_me()
        ok(extract())
    return flow


def etl() -> Flow:
    with Flow("etl") as flow:
        add(Parameter("rows", default=10), Parameter("target"))
    return flow


@pytest.fixture
async def seeded(tmp_path: Path) -> Path:
    """A failed run with two failed branches, a run paused for approval, and flow etl
    registered with a required and an optional parameter."""
    db, clock = tmp_path / "tui.db", FakeTime(START)
    store = await Store.open(db)
    try:
        await run_flow_async(branches(), store=store, run_id="twofail", time=clock)
        clock.advance(pendulum.duration(minutes=1))
        await run_flow_async(paused(), store=store, run_id="gated1", time=clock)
        reg = package_flow(etl(), file=None, registered_at=clock.timestamp())
        await store.register_flow(reg)
    finally:
        await store.close()
    return db


class Recorder:
    """Stands in for one control function: records its calls, returns `result`."""

    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
        self.result, self.error = result, error

    async def __call__(self, store: Store, *args: Any, **options: Any) -> Any:
        self.calls.append((args, options))
        if self.error is not None:
            raise self.error
        return self.result


def triggered(run_id: str, *, served: bool = True) -> Triggered:
    class Run:
        id = run_id

    return Triggered(Run(), served)  # type: ignore[arg-type]  # only .id is read


def toasts(app: Any) -> list[str]:
    return [n.message for n in app._notifications]


def preview(modal: RestartModal) -> list[tuple[str, str, str]]:
    """(does, task run, why) per row of the dry-run preview."""
    table = modal.query_one("#preview", DataTable)
    return [
        (str(row[0]), str(row[1]), str(row[3]))
        for row in (table.get_row_at(i) for i in range(table.row_count))
    ]


async def select_run(app: Any, pilot: Any, run_id: str) -> None:
    table = app.screen.query_one("#runs", VimTable)
    while table.selected_key != run_id:
        await pilot.press("j")


# Restart ------------------------------------------------------------------------------
async def test_retry_previews_every_failed_branch_then_restarts_once(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restart = Recorder(Requeued("twofail", served=False))
    monkeypatch.setattr("durable.control.restart", restart)
    monkeypatch.setattr("durable.control.current_user", lambda: "ada")
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "twofail")
        await pilot.press("R")
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, RestartModal)
        rows = preview(modal)
        reset = {task for does, task, _ in rows if does == "↻ reset"}
        reused = {task for does, task, _ in rows if does == "= reuse"}
        assert reset == {"a_fail-1", "a_down-1", "b_fail-1", "b_down-1"}
        assert reused == {"extract-1", "ok-1"}
        assert ("↻ reset", "b_fail-1", "Failed") in rows  # why: its state
        assert modal.focused is modal.query_one("#no")  # destructive: Cancel first
        await pilot.press("y")
        await settle(app, pilot)
        assert restart.calls == [(("twofail",), {"actor": "ada", "from_tasks": None})]
        assert any(
            "run twofail queued to retry from failure" in t
            and "no worker is running: start one with durable worker" in t
            for t in toasts(app)
        )


async def test_the_preview_follows_the_option_and_from_a_task_passes_it(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restart = Recorder(Requeued("twofail", served=True))
    monkeypatch.setattr("durable.control.restart", restart)
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "twofail")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        tasks = app.screen.query_one("#tasks", VimTable)
        while app.screen.selected_task().slug != "a_fail-1":
            await pilot.press("j")
        await pilot.press("R")
        await settle(app, pilot)
        modal = app.screen
        assert isinstance(modal, RestartModal)
        assert len([r for r in preview(modal) if r[0] == "↻ reset"]) == 4
        await pilot.press("2")  # from the selected task + downstream
        await pilot.pause()
        reset = [r[1] for r in preview(modal) if r[0] == "↻ reset"]
        assert reset == ["a_fail-1", "a_down-1"]
        await pilot.press("3")  # the whole run as a new run
        await pilot.pause()
        assert {r[0] for r in preview(modal)} == {"▷ new run"}
        await pilot.press("2", "y")
        await settle(app, pilot)
        assert restart.calls[0][1]["from_tasks"] == ("a_fail-1",)
        assert tasks.is_attached
        assert any("run again from a_fail-1" in t for t in toasts(app))


async def test_whole_run_again_calls_rerun(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rerun, restart = Recorder(triggered("new1")), Recorder()
    monkeypatch.setattr("durable.control.rerun", rerun)
    monkeypatch.setattr("durable.control.restart", restart)
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "twofail")
        await pilot.press("R")
        await settle(app, pilot)
        await pilot.press("3", "y")
        await settle(app, pilot)
        assert [args for args, _ in rerun.calls] == [("twofail",)]
        assert not restart.calls
        assert any("run new1 created" in t for t in toasts(app))


async def test_retry_is_refused_on_a_run_that_did_not_fail(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "gated1")
        await pilot.press("R")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        assert any("can be retried" in t for t in toasts(app))


async def test_escape_closes_the_restart_modal_without_acting(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    restart = Recorder()
    monkeypatch.setattr("durable.control.restart", restart)
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "twofail")
        await pilot.press("R")
        await settle(app, pilot)
        await pilot.press("escape")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        assert not restart.calls


# Approve ------------------------------------------------------------------------------
async def test_approve_a_paused_task_asks_then_calls_approve_once(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    approve = Recorder(Requeued("gated1", served=True))
    monkeypatch.setattr("durable.control.approve", approve)
    monkeypatch.setattr("durable.control.current_user", lambda: "ada")
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "gated1")
        await pilot.press("enter")
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RunDetailScreen)
        while screen.selected_task().slug != "ok-1":
            await pilot.press("j")
        await pilot.press("a")  # not a paused task: refused
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmModal)
        await pilot.press("g")
        while screen.selected_task().slug != "approve_me-1":
            await pilot.press("j")
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmModal)
        assert app.screen.targets == ["gated1 · gated · approve_me-1 · Paused"]
        await pilot.press("y")
        await settle(app, pilot)
        assert approve.calls == [(("gated1", "approve_me-1"), {"actor": "ada"})]
        assert any("approve_me-1 of run gated1 approved" in t for t in toasts(app))


# Trigger form -------------------------------------------------------------------------
async def open_form(app: Any, pilot: Any) -> TriggerForm:
    await pilot.press("1")
    await settle(app, pilot)
    assert isinstance(app.screen, FlowsScreen)
    table = app.screen.query_one("#table", VimTable)
    while table.selected_key != "etl":
        await pilot.press("j")
    await pilot.press("T")
    await settle(app, pilot)
    assert isinstance(app.screen, TriggerForm)
    return app.screen


async def test_the_trigger_form_keeps_its_values_and_shows_a_refusal(
    seeded: Path,
) -> None:
    app = app_for(seeded)  # the real control.trigger: target is required
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        form = await open_form(app, pilot)
        assert "etl" in str(form.query_one(".title").render())
        await pilot.press(*"25", "enter")
        await settle(app, pilot)
        assert app.screen is form
        assert form.query_one("#p0", Input).value == "25"
        error = str(form.query_one("#error").render())
        assert "missing required parameter" in error
        assert "'target'" in error
        assert form.query_one("#p1").has_class("-invalid")


async def test_the_trigger_form_triggers_with_the_parsed_values(
    seeded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trigger = Recorder(triggered("run9", served=True))
    monkeypatch.setattr("durable.control.trigger", trigger)
    monkeypatch.setattr("durable.control.current_user", lambda: "ada")
    app = app_for(seeded)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(app, pilot)
        await open_form(app, pilot)
        await pilot.press("tab", *"[1]", "enter")  # rows keeps its default
        await settle(app, pilot)
        assert isinstance(app.screen, FlowsScreen)
        assert trigger.calls == [(("etl", {"target": [1]}), {"actor": "ada"})]
        assert "run run9 created" in toasts(app)


def test_typed_values_read_like_the_cli_params() -> None:
    assert parse_value("10") == 10
    assert parse_value('{"a": [1]}') == {"a": [1]}
    assert parse_value("db.example") == "db.example"
    assert parse_value('"10"') == "10"


# Palette ------------------------------------------------------------------------------
async def palette(app: Any, pilot: Any, *keys: str) -> None:
    await pilot.press(*keys)
    await pilot.pause()
    assert isinstance(app.screen, CommandPalette)


async def type_in(app: Any, pilot: Any, text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))
    await settle(app, pilot)


def palette_texts(app: Any) -> list[str]:
    options = app.screen.query_one("CommandList")
    return [
        str(options.get_option_at_index(i).hit.text)
        for i in range(options.option_count)
    ]


async def test_palette_trigger_opens_the_form_of_that_flow(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await palette(app, pilot, "ctrl+p")
        await type_in(app, pilot, "trigger etl")
        assert palette_texts(app)[0] == "trigger etl"
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, TriggerForm)
        assert app.screen.flow_name == "etl"


async def test_palette_run_opens_it_and_colon_goes_to_an_area(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await palette(app, pilot, "colon")
        await type_in(app, pilot, "run gated1")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert app.screen.run_id == "gated1"
        await palette(app, pilot, "colon")
        await type_in(app, pilot, "flows")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.current_mode == "flows"


async def test_palette_sets_the_refresh_interval(seeded: Path) -> None:
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        screen = app.screen
        assert isinstance(screen, RunsScreen)
        await palette(app, pilot, "ctrl+p")
        await type_in(app, pilot, "refresh interval 5s")
        await pilot.press("enter")
        await settle(app, pilot)
        assert app.refresh_every == 5.0
        assert screen._every == 5.0  # the shown screen polls at the new interval
        assert screen.is_current


async def test_palette_shows_the_action_log(seeded: Path) -> None:
    store = await Store.open(seeded)
    try:  # one refused action in the audit log, its outcome with markup-like text
        with pytest.raises(DurableError):
            await control.trigger(store, "etl", {"[b]x": 1}, actor="ada")
    finally:
        await store.close()
    app = app_for(seeded)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await palette(app, pilot, "ctrl+p")
        await type_in(app, pilot, "show action log")
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, ActionLogScreen)
        table = app.screen.query_one("#actions", VimTable)
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[0] == "✗"
        assert row[2:4] == ["ada", "trigger"]
        assert "'[b]x'" in row[5]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)


# Read-only ----------------------------------------------------------------------------
async def test_read_only_refuses_and_hides_every_new_verb(seeded: Path) -> None:
    app = app_for(seeded, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await select_run(app, pilot, "twofail")
        assert "R" not in app.screen.active_bindings
        await pilot.press("R")
        await settle(app, pilot)
        assert isinstance(app.screen, RunsScreen)
        await pilot.press("enter")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        assert not {"R", "a"} & set(app.screen.active_bindings)
        await pilot.press("R", "a")
        await settle(app, pilot)
        assert isinstance(app.screen, RunDetailScreen)
        await pilot.press("escape", "1")
        await settle(app, pilot)
        assert "T" not in app.screen.active_bindings
        await pilot.press("T")
        await settle(app, pilot)
        assert isinstance(app.screen, FlowsScreen)


async def test_read_only_leaves_mutating_commands_out_of_the_palette(
    seeded: Path,
) -> None:
    app = app_for(seeded, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        await palette(app, pilot, "ctrl+p")
        await type_in(app, pilot, "etl")
        texts = palette_texts(app)
        assert "etl" in " ".join(texts)  # the palette works: only the verbs are gone
        assert not [t for t in texts if "trigger" in t or "run etl" in t]
        await pilot.press("escape")
        await palette(app, pilot, "ctrl+p")
        await type_in(app, pilot, "retry run")
        assert not [t for t in palette_texts(app) if t.startswith("retry run")]
