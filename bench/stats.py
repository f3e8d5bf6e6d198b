"""Small statistics and timing helpers: medians over runs, percentiles, a monotonic stopwatch."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence (NaN when empty, so a missing figure shows as such)."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return math.nan
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else 0.5 * (xs[mid - 1] + xs[mid])


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 100]."""
    xs = sorted(float(v) for v in values)
    if not xs:
        return math.nan
    pos = (len(xs) - 1) * min(max(q, 0.0), 100.0) / 100.0
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def spread(values: Sequence[float]) -> tuple[float, float]:
    """(min, max), NaNs when empty."""
    xs = [float(v) for v in values]
    return (min(xs), max(xs)) if xs else (math.nan, math.nan)


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call takes (perf_counter)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
