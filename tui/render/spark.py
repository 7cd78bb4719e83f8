"""One-line sparklines and percentiles for run durations and throughput."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["BARS", "percentile", "sparkline"]

BARS = "▁▂▃▄▅▆▇█"


def _known(values: Sequence[float | None]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def _resample(values: Sequence[float | None], width: int) -> list[float | None]:
    """Shrink to `width` buckets, keeping each bucket's maximum (spikes stay visible)."""
    count = len(values)
    buckets: list[float | None] = []
    for i in range(width):
        known = _known(values[i * count // width : (i + 1) * count // width])
        buckets.append(max(known) if known else None)
    return buckets


def sparkline(values: Sequence[float | None], width: int | None = None) -> str:
    """Draw values as `▁▂▃▄▅▆▇█`, scaled from their minimum to their maximum.

    A missing value is a space; when every value is equal they all get the middle bar.
    With `width`, longer input is resampled to exactly `width` characters (maximum per
    bucket); shorter input is not padded.
    """
    if width is not None and len(values) > width:
        values = _resample(values, max(width, 0))
    known = _known(values)
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    bars: list[str] = []
    for value in values:
        if value is None or math.isnan(value):
            bars.append(" ")
        elif high == low:
            bars.append(BARS[3])
        else:
            bars.append(BARS[math.floor((value - low) / (high - low) * 7 + 0.5)])
    return "".join(bars)


def percentile(values: Sequence[float | None], q: float) -> float | None:
    """Return the `q`th percentile (0 to 100, linear between ranks) of the known values.

    None when there are none; `q` outside 0..100 is clamped.
    """
    known = sorted(_known(values))
    if not known:
        return None
    rank = min(max(q, 0.0), 100.0) / 100 * (len(known) - 1)
    below = math.floor(rank)
    above = min(below + 1, len(known) - 1)
    return known[below] + (known[above] - known[below]) * (rank - below)
