"""Step 3: Parameters, the inputs a flow run is started with.

What it teaches: `Parameter(name, default=...)`. The report's currency and the smallest
order to count are no longer written into the code: each run gets its own values, which
are recorded with the run (`durable show RUN` prints them) and kept when it is resumed.
A parameter the flow does not have, or a required one left out, is refused before
anything runs or is recorded.

Run it:      python examples/03_parameters.py
     or:     durable run examples/03_parameters.py --param currency=USD --param min_amount=100
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from pathlib import Path

from durable import Flow, Parameter, ParameterError, task

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
    orders: list[dict[str, str]],
    rates: dict[str, float],
    currency: str,
    min_amount: float,
) -> dict[str, float]:
    """Add up the orders worth at least `min_amount` per country, in `currency`."""
    totals: dict[str, float] = {}
    for order in orders:
        amount = float(order["amount"]) * rates[order["currency"]] / rates[currency]
        if amount >= min_amount:
            totals[order["country"]] = totals.get(order["country"], 0.0) + amount
    return {country: round(total, 2) for country, total in sorted(totals.items())}


@task
def load(totals: dict[str, float], currency: str) -> str:
    """Write the report, one file per currency."""
    path = OUT / f"parameters_{currency}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"currency": currency, "totals": totals}, indent=2))
    return str(path)


with Flow("etl-parameters") as flow:
    # A Parameter is a task whose value comes from the run: its slug is its name.
    currency = Parameter("currency", default="EUR")
    min_amount = Parameter("min_amount", default=0)
    orders = extract(DATA / "orders.csv")
    rates = fetch_rates(DATA / "rates.json")
    totals = transform(orders, rates, currency, min_amount)
    report = load(totals, currency)


def run(parameters: dict[str, object]) -> None:
    """Run the flow with `parameters` and print its totals."""
    run_id = f"parameters-{uuid.uuid4().hex[:6]}"
    state = flow.run(parameters=parameters, run_id=run_id)
    print(f"Run {run_id} with {parameters or 'the defaults'}: {state.name}")
    print(f"  totals: {state.result[totals].result}")
    print(f"  report: {state.result[report].result}")


if __name__ == "__main__":
    run({})
    run({"currency": "USD", "min_amount": 100})
    try:
        run({"curency": "USD"})  # a typo: refused before anything runs
    except ParameterError as error:
        print(f"Refused, nothing was run or recorded: {error}")
