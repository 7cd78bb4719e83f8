"""Step 4: retries on a flaky step.

What it teaches: `@task(max_retries=..., retry_delay=...)`. The exchange rates now come
from a "rates service" that fails the first two times it is called in each run (it
fails on purpose, by looking at `durable.context.attempt`, so the example behaves the
same every time). The task run goes Failed -> Retrying -> Running again, up to
`max_retries` more attempts; each attempt is recorded. Tasks that already finished are
not run again for a retry.

Run it:      python examples/04_retries.py
     or:     durable run examples/04_retries.py
Then look:   durable show RUN    (fetch_rates-1 shows 3 attempts and each transition)
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from datetime import timedelta
from pathlib import Path

from durable import Flow, Task, context, task
from durable.states import State

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"


def show_transition(task: Task, old: State, new: State) -> State:
    """Print every state change of the task (a state handler sees each one)."""
    print(f"  {task.name}: {old.name} -> {new.name}  ({new.message})")
    return new


@task
def extract(path: Path) -> list[dict[str, str]]:
    """Read the orders, one dict per CSV row."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@task(
    max_retries=2,
    retry_delay=timedelta(seconds=0.5),
    state_handlers=[show_transition],
)
def fetch_rates(path: Path) -> dict[str, float]:
    """Ask the rates service; it times out on the first two attempts of every run."""
    context.logger.info("Calling the rates service (attempt %d)", context.attempt)
    if context.attempt < 3:
        raise TimeoutError("the rates service did not answer in time")
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
def load(totals: dict[str, float], path: Path) -> str:
    """Write the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(totals, indent=2) + "\n")
    return str(path)


with Flow("etl-retries") as flow:
    orders = extract(DATA / "orders.csv")
    rates = fetch_rates(DATA / "rates.json")
    totals = transform(orders, rates)
    report = load(totals, OUT / "retries.json")


if __name__ == "__main__":
    run_id = f"retries-{uuid.uuid4().hex[:6]}"
    print(f"Flow run {run_id}; the state changes of fetch_rates:")
    state = flow.run(run_id=run_id)
    print(f"Flow run {run_id}: {state.name} (two failures, retried, then a success)")
    print(f"Totals in EUR: {state.result[totals].result}")
    print(f"Each attempt is in the database: durable show {run_id}")
