"""Step 8: mapping, one task run per item.

What it teaches: `task.map(items)`. `country_report.map(countries, ...)` runs the task
once per country; each child is a task run of its own, with its own state, attempts,
result and checkpoint (`durable show RUN` lists them as country_report-1[0], [1], ...).
A run cut short resumes only the children that had not finished. `unmapped(x)` gives
every child the same `x`, and the reduce step, `write_index`, gets the children's results
as one list.

Run it:      python examples/08_mapping.py
     or:     durable run examples/08_mapping.py
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from durable import Flow, context, task, unmapped

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
def countries(orders: list[dict[str, str]]) -> list[str]:
    """The countries that ordered this week: the items to map over."""
    return sorted({order["country"] for order in orders})


@task
def country_report(
    country: str, orders: list[dict[str, str]], rates: dict[str, float]
) -> dict[str, object]:
    """Write one country's report (a child task run: its own checkpoint)."""
    mine = [order for order in orders if order["country"] == country]
    euros = sum(float(order["amount"]) * rates[order["currency"]] for order in mine)
    report = {"country": country, "orders": len(mine), "euros": round(euros, 2)}
    path = OUT / "mapping" / f"{country}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report) + "\n")
    context.logger.info("Child %d wrote %s", context.map_index, path.name)
    return report


@task(log_stdout=True)
def write_index(reports: list[dict[str, object]]) -> int:
    """Reduce: the children's results arrive in order, as one list."""
    path = OUT / "mapping" / "index.json"
    path.write_text(json.dumps(reports, indent=2) + "\n")
    for report in reports:
        print(f"{report['country']}: {report['orders']} orders, {report['euros']} EUR")
    return len(reports)


with Flow("mapping") as flow:
    orders = extract(DATA / "orders.csv")
    reports = country_report.map(
        countries(orders),
        orders=unmapped(orders),
        rates=unmapped(fetch_rates(DATA / "rates.json")),
    )
    count = write_index(reports)


if __name__ == "__main__":
    state = flow.run()
    children = state.result[reports].map_states
    print(f"country_report ran as {len(children)} task runs:")
    for index, child in enumerate(children):
        print(f"  country_report-1[{index}]  {child.name}  {child.result}")
    print(f"write_index got the {state.result[count].result} results as one list")
