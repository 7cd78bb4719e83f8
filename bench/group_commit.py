"""Group commit and pipelining A/B: what each is worth, measured in the same run.

`make bench` runs it. The 10,000-task chain and the 10,000-child map run under FULL
four ways, each in a fresh child process (bench/cases.py):

- default: the checkpoint writer commits everything queued in one transaction (group
  commit) and the engine starts the next task run without waiting for the previous
  one's commit (pipelining; it waits only when 256 writes are in flight);
- not pipelined: the store is opened with `max_pending=0`, so the engine waits until a
  task run's checkpoints are committed before it starts the next one (its Running and
  Success may still share a transaction);
- commit each: the writer's bench-only `commit_each` knob gives every queued operation
  (one state change with its result) a transaction of its own, in the same order;
- neither: one transaction per operation, and the engine waits for each task run's.

Durability and ordering are the same in all four; only how many fsyncs the checkpoints
share changes.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from cases import Case, floor_micros, run_case  # bench/cases.py
from report import (
    Load,
    cache_bytecode,
    describe_machine,
    print_table,
    rate_row,
)

SIZE = 10_000
VARIANTS = {
    "default (group commit, pipelined)": {},
    "not pipelined": {"pipelined": False},
    "commit each operation": {"commit_each": True},
    "neither": {"pipelined": False, "commit_each": True},
}


def main() -> None:
    began, load = time.perf_counter(), Load()
    note = cache_bytecode()
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as name:
        directory = Path(name)
        print("\n" + describe_machine("durable group commit A/B", directory, note))
        floor = floor_micros(directory, "full")
        print(f"  floor (bare sqlite3 commit, FULL): {floor:,.0f} µs per commit")
        for kind, unit, units in (
            ("chain", "task", "tasks"),
            ("map", "child", "children"),
        ):
            rows, baseline = [], 0.0
            for variant, knobs in VARIANTS.items():
                found = run_case(Case(kind, SIZE, "full", **knobs), directory)
                baseline = baseline or found.seconds
                rows.append([
                    variant, *rate_row(SIZE, found, floor),
                    f"{found.seconds / baseline:.2f}x",
                ])  # fmt: skip
            print_table(
                f"{SIZE:,}-{unit} {kind}, FULL",
                ["variant", "seconds", f"{units}/s", f"µs/{unit}", "vs floor",
                 "peak MB", "time vs default"],
                rows,
            )  # fmt: skip
    print(f"\nbench took {time.perf_counter() - began:.0f} s; {load.summary()}")


if __name__ == "__main__":
    main()
