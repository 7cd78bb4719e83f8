"""Step 2: the same ETL job as a durable flow.

What it teaches: `@task` and `with Flow(...)`. The functions of 01_plain_etl.py become
tasks (the bodies are unchanged), and calling them inside the `with` block builds the
flow's graph instead of running them. `flow.run()` then runs the graph, and every state
change and every task's result is checkpointed to the SQLite database, so the run can be
looked at afterwards and resumed if it is cut short.

Run it:      python examples/02_etl_flow.py
     or:     durable run examples/02_etl_flow.py
Then look:   durable runs             (the newest runs)
             durable show RUN         (its task runs, states, attempts and durations)
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path

from durable import Flow, task

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"


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
def load(totals: dict[str, float], path: Path) -> str:
    """Write the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(totals, indent=2) + "\n")
    return str(path)


# Nothing runs here: calling tasks inside the block adds them to the flow, with edges
# from each task to the tasks that use its result.
with Flow("etl-flow") as flow:
    orders = extract(DATA / "orders.csv")
    rates = fetch_rates(DATA / "rates.json")
    totals = transform(orders, rates)
    report = load(totals, OUT / "etl_flow.json")


if __name__ == "__main__":
    run_id = f"etl-{uuid.uuid4().hex[:6]}"
    state = flow.run(run_id=run_id)
    # The flow run's state holds the final state of each task, with its result.
    print(f"Flow run {run_id}: {state.name}")
    for each in (orders, rates, totals, report):
        print(f"  {each.name:<12} {state.result[each].name}")
    print(f"Totals in EUR: {state.result[totals].result}")
    print(f"Report: {state.result[report].result}")
    print(f"Every step was recorded; see them with: durable show {run_id}")
