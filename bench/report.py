"""What the benchmarks share: verdicts, tables, rates, the filesystem and load notes."""

from __future__ import annotations

import os
import platform
import resource
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def print_table(
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    align: str = "",
) -> None:
    """Print a titled table; `align` has one letter per column, l or r (default: l r r..).

    Numbers are right-aligned so that their digits line up.
    """
    align = align or "l" + "r" * (len(header) - 1)
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    print(f"\n{title}")
    for row in (header, *rows):
        cells = [
            cell.ljust(width) if side == "l" else cell.rjust(width)
            for cell, width, side in zip(row, widths, align, strict=True)
        ]
        print("  " + "  ".join(cells).rstrip())


def filesystem_of(path: Path) -> str:
    """Name the filesystem holding `path` (fsync on tmpfs is free, which skews FULL)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    resolved = str(path.resolve())
    for line in mounts:
        _, point, fstype, *_ = line.split()
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fstype
    return kind


class Timed(Protocol):
    """A measured case (bench/cases.py's Measured)."""

    seconds: float
    peak_mb: float


def rate_row(count: int, found: Timed, floor_micros: float) -> list[str]:
    """Cells: seconds, per second, µs each, ratio to the floor's µs/commit, peak MB."""
    micros = found.seconds / count * 1e6
    return [
        f"{found.seconds:.2f}", f"{count / found.seconds:,.0f}", f"{micros:,.0f}",
        f"{micros / floor_micros:.2f}x", f"{found.peak_mb:.0f}",
    ]  # fmt: skip


def machine_busy() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat)."""
    fields = Path("/proc/stat").read_text().split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def bench_cpu() -> float:
    """CPU seconds of this process and its waited-for descendants."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Load:
    """How busy other processes kept the machine while a bench ran."""

    def __init__(self) -> None:
        self._start = (time.monotonic(), machine_busy(), bench_cpu())

    def summary(self) -> str:
        """Name the CPUs kept busy by processes outside the bench, on average."""
        wall, busy, own = self._start
        elapsed = time.monotonic() - wall
        others = (machine_busy() - busy - (bench_cpu() - own)) / max(elapsed, 1e-9)
        advice = "" if others < 0.2 else ": the machine was busy, rerun on a quiet one"
        return f"other processes kept {max(others, 0.0):.1f} CPUs busy{advice}"


def cache_bytecode() -> str:
    """Let child processes cache bytecode, as an installed durable does, and warm it.

    Under PYTHONDONTWRITEBYTECODE every child would compile durable's modules from
    source (about 0.2 s more per process, and a wrong `import durable` time), which no
    deployment pays.
    """
    note = ""
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        note = "; PYTHONDONTWRITEBYTECODE unset for child processes"
    warm = "import durable.cli, durable.engine.flow_runner"
    subprocess.run([sys.executable, "-c", warm], check=True)
    return note


def describe_machine(title: str, directory: Path, note: str) -> str:
    """The first line of a bench's report: what it ran on, and how busy that was."""
    return (
        f"{title}: Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs, temp files on {filesystem_of(directory)}, load average "
        f"{os.getloadavg()[0]:.1f}{note}"
    )
