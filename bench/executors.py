"""Executor benchmark: the same 1,000-task chain on each executor, beside the floor.

`make bench` runs it. Each executor runs in a fresh child process (bench/cases.py):
local, concurrent (4 threads), process (a pool of 2 worker processes, started by the
run) and Dask (a `distributed` LocalCluster of 2 single-threaded worker processes,
started before the timing; its start is shown apart). A chain runs one task at a time
whatever the executor, so this measures what each executor adds per task: shipping the
body and its inputs out and the result back. Checkpoints stay in the flow's process.
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

LENGTH = 1_000
EXECUTORS = ("local", "concurrent", "process", "dask")


def main() -> None:
    began, load = time.perf_counter(), Load()
    note = cache_bytecode()
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as name:
        directory = Path(name)
        print("\n" + describe_machine("durable executor benchmark", directory, note))
        floor = floor_micros(directory, "full")
        print(f"  floor (bare sqlite3 commit, FULL): {floor:,.0f} µs per commit")
        rows, round_trip = [], float("nan")
        for kind in EXECUTORS:
            found = run_case(Case("chain", LENGTH, "full", executor=kind), directory)
            workers = f"{found.workers_peak_mb:.0f}" if found.workers_peak_mb else "-"
            start = found.extra.get("cluster_start")
            rows.append([
                kind, *rate_row(LENGTH, found, floor), workers,
                "-" if start is None else f"{start:.1f} s",
            ])  # fmt: skip
            round_trip = found.extra.get("dask_round_trip", round_trip)
        print_table(
            f"{LENGTH:,}-task chain, FULL, on each executor",
            ["executor", "seconds", "tasks/s", "µs/task", "vs floor", "peak MB",
             "worker MB", "cluster start"],
            rows,
        )  # fmt: skip
        print(
            "  peak MB: the flow's process; worker MB: its largest worker process "
            "(process and Dask)\n  Dask's own latency on the same cluster, without "
            f"durable: {round_trip * 1e6:,.0f} µs per awaited client.submit "
            "of a trivial function"
        )
    print(f"\nbench took {time.perf_counter() - began:.0f} s; {load.summary()}")


if __name__ == "__main__":
    main()
