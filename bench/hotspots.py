"""Profile one benchmark case in this process: where an engine's task run spends its time.

    .venv/bin/python bench/hotspots.py chain 10000 normal        # cProfile, own time
    .venv/bin/python bench/hotspots.py map 10000 full --sort cumulative
    .venv/bin/python bench/hotspots.py chain 10000 normal --writer  # the writer thread
    .venv/bin/python bench/hotspots.py chain 10000 normal --pyinstrument  # if installed

Builds the case's flow (bench/cases.py), warms up on a 10-task chain, then runs it once
under cProfile (or pyinstrument, which the project does not depend on: `pip install
pyinstrument` into the venv) and prints the top functions with their share of the
profiled time. cProfile sees the engine's thread only (the checkpoint writer's thread
shows as the engine waiting in `epoll.poll`), or with `--writer` the writer's thread
only; it roughly doubles the time per call: read the shares, not the absolute times. Also printed, measured without a profiler: the
wall and CPU time per task, and how long the engine waited for the writer.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

from cases import Case, build, timed_run  # bench/cases.py

from durable.store import writer as writer_module


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_waits(case: Case, flow: Any, db: Path) -> tuple[float, float, float]:
    """Return (wall, CPU, time the engine spent in throttle/flush) in seconds."""
    waited = [0.0]
    throttle, flush = (
        writer_module.CheckpointWriter.throttle,
        (writer_module.CheckpointWriter.flush),
    )

    async def timed_throttle(self: Any) -> None:
        start = time.perf_counter()
        await throttle(self)
        waited[0] += time.perf_counter() - start

    async def timed_flush(self: Any) -> None:
        start = time.perf_counter()
        await flush(self)
        waited[0] += time.perf_counter() - start

    writer_module.CheckpointWriter.throttle = timed_throttle  # type: ignore[method-assign]
    writer_module.CheckpointWriter.flush = timed_flush  # type: ignore[method-assign]
    try:
        before = cpu()
        seconds, _ = timed_run(case, flow, None, db, "measured")
        return seconds, cpu() - before, waited[0]
    finally:
        writer_module.CheckpointWriter.throttle = throttle  # type: ignore[method-assign]
        writer_module.CheckpointWriter.flush = flush  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("chain", "map", "diamond"))
    parser.add_argument("size", type=int)
    parser.add_argument("durability", choices=("full", "normal"))
    parser.add_argument("--sort", default="tottime", help="a pstats sort key")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--pyinstrument", action="store_true")
    parser.add_argument("--writer", action="store_true", help="profile the writer")
    args = parser.parse_args()
    os.environ["DURABLE_LOG_LEVEL"] = "WARNING"
    case = Case(args.kind, args.size, args.durability)
    flow, _, _ = build(case)
    with tempfile.TemporaryDirectory(prefix="durable-profile-") as name:
        directory = Path(name)
        warm, _, _ = build(Case("chain", 10))
        timed_run(case, warm, None, directory / "warm-up.db", "warm-up")
        seconds, used, waited = measure_waits(case, flow, directory / "measured.db")
        n = args.size
        print(
            f"{case.label}, no profiler: {seconds / n * 1e6:.0f} µs/task wall, "
            f"{used / n * 1e6:.0f} µs/task CPU (both threads), the engine waited "
            f"{waited / n * 1e6:.0f} µs/task for the writer "
            f"({waited / seconds:.0%} of the run)"
        )
        flow, _, _ = build(case)
        if args.pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
            timed_run(case, flow, None, directory / "profiled.db", "profiled")
            profiler.stop()
            print(profiler.output_text(unicode=True, color=False))
            return
        profile = cProfile.Profile()
        if args.writer:
            profile_writer(profile)
        else:
            profile.enable()
        timed_run(case, flow, None, directory / "profiled.db", "profiled")
        profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    total = stats.total_tt  # type: ignore[attr-defined]
    stats.sort_stats(args.sort).print_stats(args.top)
    print(f"profiled: {total:.2f} s; shares of it:")
    for line in out.getvalue().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[1].replace(".", "").isdigit():
            own, cumulative = float(fields[1]), float(fields[3])
            print(
                f"  own {own / total:6.1%}  cumulative {cumulative / total:6.1%}  "
                f"{fields[0]:>9} calls  {short(fields[5])}"
            )


def profile_writer(profile: cProfile.Profile) -> None:
    """Profile the next checkpoint writer's thread (the profiled run's) with `profile`."""
    loop = writer_module.CheckpointWriter._loop

    def profiled_loop(self: Any) -> None:
        writer_module.CheckpointWriter._loop = loop  # type: ignore[method-assign]
        profile.enable()
        try:
            loop(self)
        finally:
            profile.disable()

    writer_module.CheckpointWriter._loop = profiled_loop  # type: ignore[method-assign]


def short(where: str) -> str:
    """Trim a pstats location to package/module.py:line(function)."""
    root = str(Path(__file__).resolve().parent.parent) + "/"
    for marker in ("site-packages/", root, "/lib/python3"):
        if marker in where:
            return where.split(marker, 1)[1].removeprefix(".11/")
    return where.rsplit("/", 2)[-1] if "/" in where else where


if __name__ == "__main__":
    main()
