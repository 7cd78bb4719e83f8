"""Mapping benchmark: checkpointed maps and a fan-out/fan-in diamond, beside the floor.

`make bench` runs it. Each case runs in a fresh child process (bench/cases.py), so its
peak RSS is its own; the floor (a bare sqlite3 commit loop) is measured in the same run.
Targets are issue 6's; the bench reports PASS/MISS and never fails on a miss.
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
    verdict,
)

TARGET_CHILDREN_PER_SECOND = 15_000.0
"""A 10,000-child map with group commit under FULL."""
TARGET_PEAK_MB = 300.0
"""A 100,000-child map."""
DIAMOND_WIDTH = 1_000


def main() -> None:
    began, load = time.perf_counter(), Load()
    note = cache_bytecode()
    with tempfile.TemporaryDirectory(prefix="durable-bench-") as name:
        directory = Path(name)
        print("\n" + describe_machine("durable mapping benchmark", directory, note))
        floors = {mode: floor_micros(directory, mode) for mode in ("full", "normal")}
        print(
            f"  floor (bare sqlite3 BEGIN IMMEDIATE; INSERT; COMMIT): FULL "
            f"{floors['full']:,.0f} µs, NORMAL {floors['normal']:,.0f} µs per commit"
        )

        rows: list[list[str]] = []
        for width, mode in ((10_000, "full"), (10_000, "normal"), (100_000, "full")):
            found = run_case(Case("map", width, mode), directory)
            target, ok = "", ""
            if width == 10_000 and mode == "full":
                target = f">= {TARGET_CHILDREN_PER_SECOND:,.0f}/s"
                ok = verdict(width / found.seconds >= TARGET_CHILDREN_PER_SECOND)
            elif width == 100_000:
                target = f"peak < {TARGET_PEAK_MB:.0f} MB"
                ok = verdict(found.peak_mb < TARGET_PEAK_MB)
            rows.append([f"{width:,}", mode, *rate_row(width, found, floors[mode]),
                         target, ok])  # fmt: skip
        print_table(
            "Map: total(inc.map(items(N))), one checkpointed task run per child",
            ["children", "durability", "seconds", "children/s", "µs/child",
             "vs floor", "peak MB", "target", ""],
            rows,
            align="rlrrrrrrl",
        )  # fmt: skip

        rows = []
        tasks = DIAMOND_WIDTH + 2
        for mode in ("full", "normal"):
            found = run_case(Case("diamond", DIAMOND_WIDTH, mode), directory)
            rows.append([f"1 -> {DIAMOND_WIDTH:,} -> 1", mode,
                         *rate_row(tasks, found, floors[mode])])  # fmt: skip
        print_table(
            "Diamond fan-out/fan-in: one task, 1,000 distinct tasks on it, one task "
            "on all of them",
            ["shape", "durability", "seconds", "tasks/s", "µs/task", "vs floor",
             "peak MB"],
            rows,
            align="llrrrrr",
        )  # fmt: skip
        print(
            "  vs floor: µs per child (task) over the floor's µs/commit in the same "
            "synchronous mode"
        )
    print(f"\nbench took {time.perf_counter() - began:.0f} s; {load.summary()}")


if __name__ == "__main__":
    main()
