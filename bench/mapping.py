"""Mapping benchmark: children per second and peak memory of a checkpointed map.

Run by `make bench`. Each measurement runs in a fresh interpreter so peak RSS is the map's
own. Prints a table; never fails (the targets are informational).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

CHILD = textwrap.dedent(
    """
    import json, os, resource, sys, time
    os.environ["DURABLE_LOG_LEVEL"] = "WARNING"
    from durable import Flow, task

    width, db, durability = int(sys.argv[1]), sys.argv[2], sys.argv[3]

    @task
    def items(n):
        return list(range(n))

    @task
    def inc(x):
        return x + 1

    @task
    def total(xs):
        return sum(xs)

    with Flow("bench-map") as flow:
        result = total(inc.map(items(width)))
    start = time.perf_counter()
    state = flow.run(db=db, durability=durability)
    seconds = time.perf_counter() - start
    assert state.result[result].result == width * (width + 1) // 2, state
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": peak_kb / 1024}))
    """
)


def measure(width: int, durability: str) -> dict[str, float]:
    """Run one map of `width` children in a fresh interpreter."""
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(width), os.path.join(tmp, "b.db"),
             durability],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Print children/s for 10,000 children and peak RSS for 100,000."""
    print(
        "\nMapping: inc.map(range(N)) then a reduce, checkpoints on, one process each"
    )
    print(f"  {'children':>9}  {'durability':<10}  {'seconds':>7}  {'children/s':>10}  "
          f"{'peak MB':>7}  target")  # fmt: skip
    rows = [(10_000, "full", "children/s >= 2,000"), (10_000, "normal", ""),
            (100_000, "full", "peak < 300 MB")]  # fmt: skip
    for width, durability, target in rows:
        found = measure(width, durability)
        rate = width / found["seconds"]
        verdict = ""
        if target.startswith("children"):
            verdict = "PASS" if rate >= 2000 else "MISS"
        elif target:
            verdict = "PASS" if found["peak_mb"] < 300 else "MISS"
        print(f"  {width:>9,}  {durability:<10}  {found['seconds']:>7.2f}  {rate:>10,.0f}  "
              f"{found['peak_mb']:>7.0f}  {target} {verdict}")  # fmt: skip


if __name__ == "__main__":
    main()
