"""Pause and approve: a flow that waits for a person before it publishes.

Run it:      durable run examples/approval.py
It stops with the run Paused (the process exits; nothing is lost). Then:
             durable approve RUN publish-1
and the run continues from there: `publish` runs, `prepare` is not run again.
"""

from __future__ import annotations

from durable import Flow, task, triggers


@task
def prepare() -> dict[str, int]:
    """Build the report to publish."""
    return {"orders": 1200, "refunds": 14}


@task(trigger=triggers.manual_only)
def publish(report: dict[str, int]) -> str:
    """Publish the report; runs only once someone approves it."""
    return f"published {report}"


with Flow("approval") as flow:
    publish(prepare())


if __name__ == "__main__":
    flow.run()
