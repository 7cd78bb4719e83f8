"""The README's screenshots: `python -m tui.screenshots DIR` (`make screenshots`).

Seeds a database with a small ETL pipeline on a fixed clock (runs that succeed, one with
two failed branches, one with retries), opens the app headless at 120x34 and saves the
Runs screen and a failed run's detail as SVG. The same input gives the same pictures.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import anyio
import pendulum

from durable import Flow, signals, task
from durable.engine.flow_runner import run_flow_async
from durable.store import Store
from durable.timesource import FakeTime
from tui.app import DurableApp

START = pendulum.datetime(2026, 11, 2, 9, tz="UTC")
SIZE = (120, 34)
FAILING: set[str] = set()
CLOCK = FakeTime(START)
"""The seed's clock; each task body moves it on by its working time."""


def work(seconds: float) -> None:
    CLOCK.advance(pendulum.duration(seconds=seconds))


@task
def extract_orders() -> int:
    work(12)
    return 120


@task
def extract_customers() -> int:
    work(40)
    return 40


@task(max_retries=1, retry_delay=timedelta(0))
def transform(orders: int, customers: int) -> int:
    work(51)
    if "transform" in FAILING:
        raise ValueError("schema mismatch: column 'region' missing")
    return orders + customers


@task
def load_warehouse(rows: int) -> int:
    work(95)
    if "load_warehouse" in FAILING:
        raise signals.FAIL("warehouse lock not granted after 30 s")
    return rows


@task
def audit(rows: int) -> int:
    work(20)
    if "audit" in FAILING:
        raise RuntimeError("audit threshold exceeded")
    return rows


@task
def report(loaded: int, audited: int) -> str:
    work(4)
    return f"{loaded} rows"


def pipeline() -> Flow:
    with Flow("etl_daily") as flow:
        rows = transform(extract_orders(), extract_customers())
        report(load_warehouse(rows), audit(rows))
    return flow


async def seed(db: Path) -> str:
    """Six runs an hour apart; the fifth fails in two branches. Returns its id."""
    clock, store = CLOCK, await Store.open(db)
    clock.advance(START - clock.now())  # a second seed starts where the first did
    failed = ""
    try:
        for i in range(6):
            FAILING.clear()
            if i == 4:
                FAILING.update({"load_warehouse", "audit"})
                failed = f"run-{i}"
            await run_flow_async(pipeline(), store=store, run_id=f"run-{i}", time=clock)
            clock.advance(START.add(hours=i + 1) - clock.now())
    finally:
        FAILING.clear()
        await store.close()
    return failed


async def save(out: Path) -> list[Path]:
    """Write runs.svg and run-detail.svg into directory `out` (an absolute path, which
    must exist); return their paths."""
    # In the database's directory, so the header shows "durable.db", not a temp path.
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        db = Path("durable.db")
        failed = await seed(db)
        now = START.add(hours=5, minutes=4).timestamp()
        app = DurableApp(db, refresh=3600, clock=lambda: now)
        async with app.run_test(size=SIZE) as pilot:
            await _settle(app, pilot)
            app.save_screenshot("runs.svg", str(out))
            await pilot.press("j", "enter")  # newest first: the failed run is second
            await _settle(app, pilot)
            assert failed in str(app.screen.query_one("#header").render())
            app.save_screenshot("run-detail.svg", str(out))
    return [out / "runs.svg", out / "run-detail.svg"]


async def _settle(app: DurableApp, pilot: object) -> None:
    await pilot.pause()  # type: ignore[attr-defined]
    await app.workers.wait_for_complete()
    await pilot.pause()  # type: ignore[attr-defined]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img").resolve()
    out.mkdir(parents=True, exist_ok=True)
    for path in anyio.run(save, out):
        sys.stdout.write(f"{path}\n")


if __name__ == "__main__":
    main()
