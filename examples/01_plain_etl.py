"""Step 1: a plain Python ETL job, before durable.

What it teaches: the starting point of the tutorial. Three functions read this week's
orders (examples/data/orders.csv), convert every amount to euros with the rates in
examples/data/rates.json, and write the total per country to a JSON report. It works,
but nothing remembers what it did: if the process dies half-way, the next run starts
again from the top, and nothing records when it ran or how long each step took.
02_etl_flow.py turns these same functions into a durable flow.

Run it:      python examples/01_plain_etl.py
The report goes to $DURABLE_HOME/examples/ (default ~/.durable/examples/), the folder
the later examples write to as well.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"


def extract(path: Path) -> list[dict[str, str]]:
    """Read the orders, one dict per CSV row."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def fetch_rates(path: Path) -> dict[str, float]:
    """Read how many euros one unit of each currency is worth."""
    rates: dict[str, float] = json.loads(path.read_text())["rates"]
    return rates


def transform(
    orders: list[dict[str, str]], rates: dict[str, float]
) -> dict[str, float]:
    """Add up the orders of each country, in euros."""
    totals: dict[str, float] = {}
    for order in orders:
        euros = float(order["amount"]) * rates[order["currency"]]
        totals[order["country"]] = totals.get(order["country"], 0.0) + euros
    return {country: round(total, 2) for country, total in sorted(totals.items())}


def load(totals: dict[str, float], path: Path) -> Path:
    """Write the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(totals, indent=2) + "\n")
    return path


def main() -> None:
    """Extract, transform, load: one after the other, all in memory."""
    orders = extract(DATA / "orders.csv")
    rates = fetch_rates(DATA / "rates.json")
    totals = transform(orders, rates)
    report = load(totals, OUT / "plain_etl.json")
    print(f"Read {len(orders)} orders; total per country, in EUR:")
    for country, total in totals.items():
        print(f"  {country}  {total:>10.2f}")
    print(f"Wrote {report}")
    print("Nothing was recorded: kill this script half-way and it starts over.")


if __name__ == "__main__":
    main()
