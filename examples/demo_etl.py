"""The flow `make demo` runs (examples/demo.py): a slow ETL, to be killed mid-way.

Extract the orders of examples/data/orders.csv, fetch exchange rates from
examples/data/rates.json (flaky: the first attempt of every run fails, and is retried),
convert, validate, load, report. Each step pretends to work for ETL_STEP_SECONDS (0.6),
so that there is time to interrupt it.

Run it:      durable run examples/demo_etl.py
Kill it (Ctrl-C or kill -9) mid-way, then:   durable resume RUN_ID
Finished tasks are not run again; their results are read back from the database.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from durable import Flow, Parameter, context, task

DATA = Path(__file__).resolve().parent / "data"
STEP_SECONDS = float(os.environ.get("ETL_STEP_SECONDS", "0.6"))
"""How long each step pretends to work (the demo needs time to interrupt it)."""


def work(what: str) -> None:
    """Pretend to do `what` for a moment."""
    context.logger.info("%s...", what)
    time.sleep(STEP_SECONDS)


@task
def extract(path: str) -> list[dict[str, object]]:
    """Read the orders from the source system (a CSV file)."""
    work(f"Extracting orders from {Path(path).name}")
    with open(path, newline="") as file:
        return [
            {"id": int(row["order_id"]), "amount": float(row["amount"]),
             "currency": row["currency"]}
            for row in csv.DictReader(file)
        ]  # fmt: skip


@task(max_retries=2, retry_delay=timedelta(seconds=0.5))
def fetch_rates(path: str) -> dict[str, float]:
    """Fetch exchange rates; the service times out on the first attempt of every run."""
    work("Fetching exchange rates")
    if context.attempt == 1:
        raise TimeoutError("rates service did not answer in time")
    rates: dict[str, float] = json.loads(Path(path).read_text())["rates"]
    return rates


@task
def transform(
    orders: list[dict[str, object]], rates: dict[str, float]
) -> list[dict[str, object]]:
    """Convert every order to euros."""
    work("Converting amounts")
    return [
        {
            **o,
            "amount_base": round(
                float(str(o["amount"])) * rates[str(o["currency"])], 2
            ),
        }
        for o in orders
    ]


@task
def validate(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Refuse negative amounts."""
    work("Validating rows")
    bad = [r["id"] for r in rows if float(str(r["amount_base"])) < 0]
    if bad:
        raise ValueError(f"orders with negative amounts: {bad}")
    return rows


@task
def load(rows: list[dict[str, object]], target: str) -> str:
    """Write the rows atomically (a re-run replaces the file: the load is idempotent)."""
    work(f"Loading {len(rows)} rows")
    path = Path(target).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as out:
        json.dump({"task_run_id": context.task_run_id, "rows": rows}, out)
    os.replace(out.name, path)
    return str(path)


@task(log_stdout=True)
def report(rows: list[dict[str, object]], where: str) -> float:
    """Print a summary."""
    total = round(sum(float(str(r["amount_base"])) for r in rows), 2)
    print(f"Loaded {len(rows)} orders worth {total} into {where}")
    return total


with Flow("etl") as flow:
    home = os.environ.get("DURABLE_HOME", "~/.durable")
    target = Parameter("target", default=os.path.join(home, "etl-output.json"))
    orders = extract(str(DATA / "orders.csv"))
    rows = validate(transform(orders, fetch_rates(str(DATA / "rates.json"))))
    report(rows, load(rows, target))


if __name__ == "__main__":
    flow.run()
