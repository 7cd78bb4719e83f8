"""Step 9: a crash, and a resume that skips what had finished.

What it teaches: what durable is for. The `load` task "loses power": on its first
attempt it kills its own process with SIGKILL (no exception, no cleanup, as a power cut
or the OOM killer would), after `extract` and `transform` have finished. Resuming the run
by its id (`durable resume RUN`, or `flow.run(run_id=RUN)`) does not run `extract` and
`transform` again: their results are read back from the database. `load` runs again as
its attempt 2, because a task cut short runs again: task bodies run at least once, so
make their side effects safe to repeat (here, `load` replaces its file).

Run it:      python examples/09_crash_and_resume.py
             (runs the flow in a child process that crashes, then resumes it here)
By hand:     durable run examples/09_crash_and_resume.py --run-id crash-1   (killed)
             durable show crash-1      (load-1 is still Running: its process died)
             durable resume crash-1    (extract and transform are not run again)
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from durable import Flow, context, task

DATA = Path(__file__).resolve().parent / "data"
OUT = Path(os.environ.get("DURABLE_HOME", "~/.durable")).expanduser() / "examples"
CALLS = OUT / "crash_and_resume"
"""Where each task body notes that it ran: one file per run, one line per call."""


def note_call() -> None:
    """Append 'task attempt' to this run's calls file, to count the bodies that ran."""
    CALLS.mkdir(parents=True, exist_ok=True)
    with (CALLS / f"{context.flow_run_id}.txt").open("a") as calls:
        calls.write(f"{context.task_name} attempt {context.attempt}\n")


@task
def extract(path: Path) -> list[dict[str, str]]:
    """Read the orders, one dict per CSV row."""
    note_call()
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


@task
def transform(orders: list[dict[str, str]], path: Path) -> dict[str, float]:
    """Add up the orders of each country, in euros."""
    note_call()
    rates: dict[str, float] = json.loads(path.read_text())["rates"]
    totals: dict[str, float] = {}
    for order in orders:
        euros = float(order["amount"]) * rates[order["currency"]]
        totals[order["country"]] = totals.get(order["country"], 0.0) + euros
    return {country: round(total, 2) for country, total in sorted(totals.items())}


@task
def load(totals: dict[str, float]) -> str:
    """Write the report; the first attempt dies before it can."""
    note_call()
    if context.attempt == 1:
        context.logger.warning("Writing the report... and the power goes out (SIGKILL)")
        # Half a second into the write: the checkpoints queued so far (load's Running
        # included) are committed by then; the writer commits within milliseconds.
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGKILL)
    path = OUT / f"crash_and_resume-{context.flow_run_id}.json"
    path.write_text(json.dumps(totals, indent=2) + "\n")  # a rerun replaces it
    return str(path)


with Flow("crash-and-resume") as flow:
    report = load(transform(extract(DATA / "orders.csv"), DATA / "rates.json"))


def main() -> int:
    """Crash a run in a child process, resume it here, and show which bodies ran."""
    run_id = f"crash-{uuid.uuid4().hex[:6]}"
    print(f"1. Running flow run {run_id} in a child process (durable run)...")
    crashed = subprocess.run(
        [sys.executable, "-m", "durable", "run", __file__, "--run-id", run_id],
        check=False,
    )
    print(f"   The child died: exit status {crashed.returncode} (-9 is SIGKILL).")
    print(f"2. Resuming run {run_id} in this process: flow.run(run_id=...)")
    state = flow.run(run_id=run_id)
    print(f"   Resumed run: {state.name}; report at {state.result[report].result}")
    print("3. The task bodies that ran, in both processes:")
    calls = (CALLS / f"{run_id}.txt").read_text().splitlines()
    for name, count in Counter(line.split()[0] for line in calls).items():
        what = "once" if count == 1 else f"{count} times"
        print(f"   {name} ran {what}")
    print("   A task that finished before the crash ran once: the resume read its")
    print("   result from the database. The one cut short ran again.")
    print(f"   Both processes' attempts and states: durable show {run_id}")
    return 0 if state.is_successful() else 1


if __name__ == "__main__":
    sys.exit(main())
