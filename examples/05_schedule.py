"""Step 5: the ETL flow on a schedule.

What it teaches: `Flow(schedule=...)` with an `IntervalSchedule`. `flow.run()` on a
flow with a schedule blocks, waits for each time the schedule gives, starts a new flow
run then, and returns once the schedule has no more times (as in Prefect 1). So that
this example ends on its own, its schedule starts 2 seconds after the file is loaded and
stops after 3 runs, 1 second apart (`end_date`); a real one would be, say,
`CronSchedule("0 2 * * *", timezone="Europe/Berlin")`, every night at 02:00.

Run it:      python examples/05_schedule.py            (3 runs, about 4 seconds)
Unattended:  durable register examples/05_schedule.py, then `durable worker`: the
             worker runs each tick in a process of its own, and a tick missed while no
             worker ran is still accounted for (see docs/tutorial.md).
`durable run examples/05_schedule.py` runs it once, now, ignoring the schedule.
"""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path

import pendulum

from durable import Flow, context, task
from durable.schedules import IntervalSchedule

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"

EVERY = timedelta(seconds=1)
RUNS = 3
FIRST = pendulum.now("UTC").replace(microsecond=0).add(seconds=2)
"""The first run's time: computed when the file loads (for `durable register`, when it
is registered), so the schedule always lies a moment ahead."""


@task
def extract(path: Path) -> list[dict[str, str]]:
    """Read the orders, one dict per CSV row."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@task
def fetch_rates(path: Path) -> dict[str, float]:
    """Read how many euros one unit of each currency is worth."""
    rates: dict[str, float] = json.loads(path.read_text())["rates"]
    return rates


@task
def transform(
    orders: list[dict[str, str]], rates: dict[str, float]
) -> dict[str, float]:
    """Add up the orders of each country, in euros."""
    totals: dict[str, float] = {}
    for order in orders:
        euros = float(order["amount"]) * rates[order["currency"]]
        totals[order["country"]] = totals.get(order["country"], 0.0) + euros
    return {country: round(total, 2) for country, total in sorted(totals.items())}


@task
def load(totals: dict[str, float]) -> str:
    """Write one report per scheduled time (so a rerun of a tick replaces its own)."""
    when = context.scheduled_start_time.format("YYYYMMDD-HHmmss")
    path = OUT / "schedule" / f"{context.flow_name}-{when}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(totals, indent=2) + "\n")
    print(f"Run {context.flow_run_id} for {when} UTC wrote {path.name}", flush=True)
    return str(path)


schedule = IntervalSchedule(
    start_date=FIRST, interval=EVERY, end_date=FIRST + EVERY * (RUNS - 1)
)
# catchup="all": a worker that starts late still runs every tick it missed.
with Flow("etl-schedule", schedule=schedule, catchup="all") as flow:
    load(transform(extract(DATA / "orders.csv"), fetch_rates(DATA / "rates.json")))


if __name__ == "__main__":
    every = EVERY.total_seconds()
    print(f"Waiting for the schedule: {RUNS} runs from {FIRST}, every {every:g} s")
    state = flow.run()  # blocks until the schedule ends; returns the last run's state
    print(f"The schedule has no more runs; the last one ended {state.name}")
