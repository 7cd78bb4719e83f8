"""Conditional branches: `case` runs one branch, `merge` joins the branches again.

Run it:   python examples/conditionals.py
    or:   durable run examples/conditionals.py --param amount=5000

Orders above a limit go to a reviewer; the others are approved automatically. The branch
that does not apply is Skipped, and `merge` passes on the result of the one that ran.
"""

from __future__ import annotations

from durable import Flow, Parameter, case, merge, task


@task
def needs_review(amount: float, limit: float) -> bool:
    return amount > limit


@task
def approve(amount: float) -> str:
    return f"{amount:.2f} approved automatically"


@task
def send_to_reviewer(amount: float) -> str:
    return f"{amount:.2f} sent to a reviewer"


@task(log_stdout=True)
def notify(decision: str) -> None:
    print(f"Order decision: {decision}")


with Flow("conditionals") as flow:
    amount = Parameter("amount", default=120.0)
    limit = Parameter("limit", default=1000.0)
    review = needs_review(amount, limit)
    with case(review, False):
        approved = approve(amount)
    with case(review, True):
        reviewed = send_to_reviewer(amount)
    notify(merge(approved, reviewed))


if __name__ == "__main__":
    state = flow.run()
    print(flow.visualize(state))  # each task with its state: one branch is Skipped
