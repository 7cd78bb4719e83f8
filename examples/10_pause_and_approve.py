"""Step 10: pause for a person, then approve.

What it teaches: `trigger=triggers.manual_only`. The weekly report is built, but
`publish` waits for someone to approve it. When nothing else can run, the flow run ends
`Paused` and the process exits: nothing waits in memory, so a reboot meanwhile loses
nothing. `durable approve RUN publish-1` records the approval and continues the run: only
`publish` runs; the tasks before it are not run again.

Run it:      python examples/10_pause_and_approve.py
             (runs until the pause, then approves it as a reviewer would, from another
             process, with `durable approve`)
By hand:     durable run examples/10_pause_and_approve.py --run-id weekly-1
             durable approve weekly-1 publish-1
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from durable import Flow, context, task, triggers

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"


@task
def extract(path: Path) -> list[dict[str, str]]:
    """Read the orders, one dict per CSV row."""
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@task
def build_report(orders: list[dict[str, str]], path: Path) -> dict[str, float]:
    """The week's total per country, in euros: what the reviewer approves."""
    rates: dict[str, float] = json.loads(path.read_text())["rates"]
    totals: dict[str, float] = {}
    for order in orders:
        euros = float(order["amount"]) * rates[order["currency"]]
        totals[order["country"]] = totals.get(order["country"], 0.0) + euros
    return {country: round(total, 2) for country, total in sorted(totals.items())}


@task(trigger=triggers.manual_only, log_stdout=True)
def publish(report: dict[str, float]) -> str:
    """Publish the report; runs only once someone has approved it."""
    path = OUT / f"published-{context.flow_run_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"Published {path.name}")
    return str(path)


with Flow("pause-and-approve") as flow:
    published = publish(build_report(extract(DATA / "orders.csv"), DATA / "rates.json"))


def main() -> int:
    """Run to the pause, approve from another process, and show the outcome."""
    run_id = f"weekly-{uuid.uuid4().hex[:6]}"
    state = flow.run(run_id=run_id)
    print(f"1. Flow run {run_id} ended {state.name}: {state.message}")
    print(f"   Waiting for approval of: {state.context['waiting']}")
    print(f"2. A reviewer approves it: durable approve {run_id} publish-1")
    approve = [sys.executable, "-m", "durable", "approve", run_id, "publish-1"]
    approved = subprocess.run(approve, check=False)
    print(f"   durable approve exited {approved.returncode}; the run went on in there.")
    # Asking for a finished run again returns its recorded states; nothing runs.
    state = flow.run(run_id=run_id)
    print(f"3. Flow run {run_id} is now {state.name}: {state.result[published].result}")
    return 0 if state.is_successful() else 1


if __name__ == "__main__":
    sys.exit(main())
