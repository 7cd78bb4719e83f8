"""Step 6: the same work on a Dask cluster.

What it teaches: executors. An executor decides where task bodies run; the flow does not
change. Here `Flow(executor=DaskExecutor(...))` starts a Dask `LocalCluster` of two
worker processes for the run and closes it afterwards. `convert.map(orders)` makes one
task run per order, and Dask spreads their bodies over the two workers. Retries,
triggers and every checkpoint stay in this process, the only one that writes the
database, so a crash here loses nothing that was committed: `durable resume` finishes
the run on a new cluster.

Needs:       the `distributed` package (pip install 'durable[dask]'; the dev extra has
             it). Without it the example says so and runs on the LocalExecutor.
Run it:      python examples/06_dask.py        (about 3 seconds: the cluster starts)
     or:     durable run examples/06_dask.py
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
import uuid
from pathlib import Path

from durable import Flow, LocalExecutor, task, unmapped
from durable.executors import DaskExecutor, Executor

DATA = Path(__file__).resolve().parent / "data"


def dask_or_local() -> Executor:
    """A two-worker LocalCluster per run, or the LocalExecutor without `distributed`."""
    if importlib.util.find_spec("distributed") is None:
        print(
            "The `distributed` package is not installed, so this runs on the "
            "LocalExecutor instead (pip install 'durable[dask]' for Dask).",
            file=sys.stderr,
        )
        return LocalExecutor()
    return DaskExecutor(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "dashboard_address": None,  # no web dashboard (nor its port) needed here
        }
    )


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
def convert(order: dict[str, str], rates: dict[str, float]) -> dict[str, object]:
    """Convert one order to euros, noting the process that ran this body."""
    euros = round(float(order["amount"]) * rates[order["currency"]], 2)
    return {"country": order["country"], "euros": euros, "pid": os.getpid()}


@task
def summarize(converted: list[dict[str, object]]) -> dict[str, object]:
    """Add up the converted orders per country (the mapped results arrive as a list)."""
    totals: dict[str, float] = {}
    for row in converted:
        country, euros = str(row["country"]), float(str(row["euros"]))
        totals[country] = round(totals.get(country, 0.0) + euros, 2)
    pids = sorted({int(str(row["pid"])) for row in converted})
    return {"totals": dict(sorted(totals.items())), "body_pids": pids}


# LocalCluster starts its workers with multiprocessing's spawn, which imports this file
# again: flow.run() must stay under `if __name__ == "__main__":`.
with Flow("etl-dask", executor=dask_or_local()) as flow:
    rates = fetch_rates(DATA / "rates.json")
    # One child per order; unmapped(): every child gets the whole rates dict.
    converted = convert.map(extract(DATA / "orders.csv"), rates=unmapped(rates))
    summary = summarize(converted)


if __name__ == "__main__":
    run_id = f"dask-{uuid.uuid4().hex[:6]}"
    state = flow.run(run_id=run_id)
    result = state.result[summary].result
    print(f"Flow run {run_id}: {state.name}")
    print(f"Totals in EUR: {result['totals']}")
    print(f"This process (pid {os.getpid()}) wrote every checkpoint; the task bodies")
    print(f"ran in the worker processes {result['body_pids']}.")
    print(f"One task run per order: durable show {run_id}")
