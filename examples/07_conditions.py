"""Step 7: branches with `case` and `merge`.

What it teaches: control flow inside a flow. Orders worth more than a limit go to a
reviewer; if there are none, the week is approved automatically. `with case(task,
value):` runs its tasks only when the task's result equals `value`; the branch not taken
is Skipped (a state of its own, recorded like any other), and `merge` passes on the
result of whichever branch ran. `flow.visualize(state)` prints each task with its state.

Run it:      python examples/07_conditions.py
     or:     durable run examples/07_conditions.py --param review_limit=5000
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from durable import Flow, Parameter, case, merge, task

DATA = Path(__file__).resolve().parent / "data"


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
def large_orders(
    orders: list[dict[str, str]], rates: dict[str, float], limit: float
) -> list[str]:
    """The ids of the orders worth more than `limit` euros."""
    return [
        order["order_id"]
        for order in orders
        if float(order["amount"]) * rates[order["currency"]] > limit
    ]


@task
def needs_review(large: list[str]) -> bool:
    """Whether a person has to look at the week."""
    return bool(large)


@task
def approve_automatically() -> str:
    """The quiet branch."""
    return "approved automatically: no large orders"


@task
def send_to_reviewer(large: list[str]) -> str:
    """The branch with a person in it (here: a message)."""
    return f"sent to a reviewer: orders {', '.join(large)}"


@task(log_stdout=True)
def report(decision: str) -> str:
    """Say what was decided; runs whichever branch ran."""
    print(f"This week's orders: {decision}")
    return decision


with Flow("conditions") as flow:
    limit = Parameter("review_limit", default=1000)
    orders = extract(DATA / "orders.csv")
    large = large_orders(orders, fetch_rates(DATA / "rates.json"), limit)
    review = needs_review(large)
    with case(review, True):
        reviewed = send_to_reviewer(large)
    with case(review, False):
        approved = approve_automatically()
    decision = report(merge(reviewed, approved))


if __name__ == "__main__":
    for review_limit in (1000, 5000):
        state = flow.run(review_limit=review_limit)
        print(f"\nreview_limit={review_limit}: {state.result[decision].result}")
        print(flow.visualize(state))  # one branch ran, the other is Skipped
