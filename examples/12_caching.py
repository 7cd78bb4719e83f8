"""Step 12: caching and targets, so a second run reuses what the first computed.

What it teaches: `cache_for` and `target`. The (slow, pretend) rates service is asked
at most once an hour per currency: `cache_for=timedelta(hours=1)` keeps its answer in
the database, and `cache_validator=all_parameters` reuses it only for runs with the same
parameters. `transform` has a `target`: once its file exists, the body is not run again
and the file is read instead. A reused result ends the task run `Cached`. Cached values
live in the database, so they survive restarts and crashes.

Run it:      python examples/12_caching.py    (three runs: EUR, EUR again, USD)
     or:     durable run examples/12_caching.py --param currency=USD   (twice)
Target files go to $DURABLE_HOME/results/caching/DAY/CURRENCY.json.
"""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

from durable import Flow, Parameter, context, task
from durable.engine.cache_validators import all_parameters

DATA = Path(__file__).resolve().parent / "data"


@task
def extract(path: Path) -> list[dict[str, str]]:
    """Read the orders, one dict per CSV row."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@task(cache_for=timedelta(hours=1), cache_validator=all_parameters)
def fetch_rates(path: Path, currency: str) -> dict[str, float]:
    """Ask the rates service for one unit of each currency in `currency` (cached)."""
    context.logger.info("Calling the rates service for %s", currency)
    rates: dict[str, float] = json.loads(path.read_text())["rates"]
    return {code: rate / rates[currency] for code, rate in rates.items()}


@task(target="{flow_name}/{today}/{currency}.json", serializer="json")
def transform(
    orders: list[dict[str, str]], rates: dict[str, float], currency: str
) -> dict[str, float]:
    """Add up the orders of each country; the result is also the target file."""
    totals: dict[str, float] = {}
    for order in orders:
        amount = float(order["amount"]) * rates[order["currency"]]
        totals[order["country"]] = totals.get(order["country"], 0.0) + amount
    return {country: round(total, 2) for country, total in sorted(totals.items())}


with Flow("caching") as flow:
    currency = Parameter("currency", default="EUR")
    rates = fetch_rates(DATA / "rates.json", currency)
    totals = transform(extract(DATA / "orders.csv"), rates, currency)


if __name__ == "__main__":
    for run, code in enumerate(("EUR", "EUR", "USD"), start=1):
        state = flow.run(currency=code)
        print(f"Run {run} ({code}):")
        for each in (rates, totals):
            done = state.result[each]
            print(f"  {each.name:<12} {done.name:<8} {done.message}")
    print("Run 2 reused both results; USD is another parameter, so run 3 missed.")
