"""The one percentile of the tests and benchmarks."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); ``p`` in 0..100.
    None for no values."""
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def stats_ms(values_s: Sequence[float]) -> dict[str, float | None]:
    """min/p50/p90/p99/max of seconds, in milliseconds."""
    out = {}
    for name, p in (("min", 0), ("p50", 50), ("p90", 90), ("p99", 99), ("max", 100)):
        v = percentile(values_s, p)
        out[name] = None if v is None else round(v * 1000, 2)
    return out
