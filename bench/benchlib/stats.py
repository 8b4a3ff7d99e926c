"""Percentiles and small summaries. Linear interpolation between closest ranks (the
"R-7" definition numpy uses by default), so p50 of an even count is the mean of the middle
two."""

from __future__ import annotations

import math
from typing import Iterable, Sequence


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * p / 100.0
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summary(values: Sequence[float]) -> dict:
    """p50/p90/p99, min, max, mean and count of `values`."""
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0}
    return {
        "n": len(vals),
        "p50": percentile(vals, 50),
        "p90": percentile(vals, 90),
        "p99": percentile(vals, 99),
        "min": min(vals),
        "max": max(vals),
        "mean": sum(vals) / len(vals),
    }


def spread(values: Iterable[float]) -> tuple[float, float] | None:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return (min(vals), max(vals)) if vals else None


def fmt(v: float | None, digits: int | None = None) -> str:
    """A number with a sensible number of significant digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if digits is not None:
        return f"{v:.{digits}f}"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_spread(s: tuple[float, float] | None, digits: int | None = None) -> str:
    if not s:
        return "–"
    return f"{fmt(s[0], digits)}–{fmt(s[1], digits)}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or not b or math.isnan(a) or math.isnan(b):
        return "–"
    r = a / b
    return f"{r:.2f}×" if r < 10 else f"{r:.0f}×" if r >= 100 else f"{r:.1f}×"
