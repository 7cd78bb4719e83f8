"""What the benchmarks share: PASS/MISS verdicts, aligned tables, the filesystem note."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


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
