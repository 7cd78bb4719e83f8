"""A/B of two source trees of durable on the same cases, interleaved, in one run.

    git archive HEAD durable | tar -x -C /tmp/before    # the tree to compare against
    .venv/bin/python bench/ab.py /tmp/before            # B: this checkout
    .venv/bin/python bench/ab.py /tmp/before /tmp/after --repeats 7

Each repeat runs every case once on each tree, alternating which goes first, each in a
fresh child process (bench/cases.py) whose `durable` comes from the tree (PYTHONPATH).
Prints the median µs per task of wall time and of CPU time (engine and writer threads
together: steadier than wall time on a shared machine) and B's ratio to A. Not part of
`make bench`: a tool for checking that an optimisation helps before keeping it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

from cases import Case, run_case  # bench/cases.py
from report import Load, cache_bytecode, print_table

CASES = (
    Case("chain", 10_000, "normal"),
    Case("chain", 10_000, "full"),
    Case("map", 10_000, "full"),
)


def use_tree(tree: str) -> None:
    """Make child processes import durable from `tree` ("" for this checkout)."""
    if tree:
        os.environ["PYTHONPATH"] = str(Path(tree).resolve())
    else:
        os.environ.pop("PYTHONPATH", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="directory holding the A tree's durable package")
    parser.add_argument("b", nargs="?", default="", help="the B tree (default: here)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load, note = Load(), cache_bytecode()
    trees = {"A": args.a, "B": args.b}
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="durable-ab-") as name:
        for repeat in range(args.repeats):
            for case in CASES:
                for side in ("A", "B") if repeat % 2 == 0 else ("B", "A"):
                    use_tree(trees[side])
                    found = run_case(case, Path(name))
                    key = (case.label, side)
                    wall.setdefault(key, []).append(found.seconds / case.size * 1e6)
                    cpu.setdefault(key, []).append(
                        found.extra["cpu_seconds"] / case.size * 1e6
                    )
    use_tree("")
    rows = []
    for case in CASES:
        cells = [case.label]
        for measure in (wall, cpu):
            a = statistics.median(measure[(case.label, "A")])
            b = statistics.median(measure[(case.label, "B")])
            cells += [f"{a:.0f}", f"{b:.0f}", f"{b / a:.3f}"]
        rows.append(cells)
    print_table(
        f"A = {args.a}, B = {args.b or 'this checkout'}: median of {args.repeats} "
        f"(µs per task){note}",
        ["case", "wall A", "wall B", "B/A", "CPU A", "CPU B", "B/A"],
        rows,
    )
    print(f"  {load.summary()}")


if __name__ == "__main__":
    main()
