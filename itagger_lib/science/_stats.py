"""Small numerical helpers shared by the metric families."""

from __future__ import annotations

import numpy as np


def shannon_entropy(counts: np.ndarray) -> float:
    """Shannon entropy in bits of a histogram: ``H = -sum p_i log2 p_i`` over ``p_i > 0``.

    Returns 0 for an empty histogram.
    """
    counts = np.asarray(counts, dtype=np.float64).ravel()
    total = counts.sum()
    if total <= 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of ``y`` on ``x`` and the coefficient of determination R².

    R² is 1 for a perfect fit and 0 when ``y`` is constant or fewer than two points exist.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2:
        return 0.0, 0.0
    xm, ym = x.mean(), y.mean()
    sxx = float(((x - xm) ** 2).sum())
    syy = float(((y - ym) ** 2).sum())
    sxy = float(((x - xm) * (y - ym)).sum())
    if sxx == 0:
        return 0.0, 0.0
    slope = sxy / sxx
    r2 = sxy * sxy / (sxx * syy) if syy > 0 else 0.0
    return slope, r2
