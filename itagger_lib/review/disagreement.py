"""Disagreement per unit and the disagreement expected by chance, for ordering adjudication.

Krippendorff's observed disagreement :math:`D_o` is a sum over units; its per-unit terms say
which images raters disagree on most, and dividing them by the expected disagreement
:math:`D_e` makes attributes of different levels and scales comparable
(:func:`itagger_lib.review.adjudication.queue`). Pure functions over a reliability matrix
(see :mod:`~itagger_lib.review.coefficients`).

References
----------
Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School for
Communication, University of Pennsylvania.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from itagger_lib.review.coefficients import LEVELS, as_matrix

__all__ = ["expected_disagreement", "unit_disagreement"]


def unit_disagreement(matrix: pd.DataFrame, level: str = "nominal") -> pd.Series:
    """Observed disagreement of each unit, for ordering an adjudication queue.

    Nominal: the share of disagreeing rater pairs, :math:`1 - \\sum_k r_k(r_k-1)/(m(m-1))`, in
    [0, 1]. Ordinal, interval, ratio: the mean squared difference over rater pairs,
    :math:`\\frac{1}{m(m-1)}\\sum_{i \\ne j}(x_i - x_j)^2 = 2\\,\\mathrm{Var}_{ddof=1}`, in
    squared scale units (ordinal codes are taken as equally spaced). These are the per-unit
    terms of Krippendorff's :math:`D_o` for the nominal and interval metrics:
    :math:`D_o = \\sum_u m_u d_u / n_{\\cdot\\cdot}`. Units with fewer than two ratings get ``NaN``.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level of measurement {level!r}; use one of {', '.join(LEVELS)}")
    frame = pd.DataFrame(matrix).astype(float)
    values = frame.to_numpy()
    m = np.sum(~np.isnan(values), axis=1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        if level == "nominal":
            agreeing = np.zeros(len(values))
            for category in np.unique(values[~np.isnan(values)]):
                r = np.sum(values == category, axis=1)
                agreeing += r * (r - 1)
            result = 1.0 - agreeing / (m * (m - 1))
        else:
            result = 2.0 * frame.var(axis=1, ddof=1).to_numpy()
    return pd.Series(np.where(m >= 2, result, np.nan), index=frame.index, name="disagreement")


def expected_disagreement(matrix: pd.DataFrame | np.ndarray, level: str = "nominal") -> float:
    """Krippendorff's expected disagreement :math:`D_e` over the pairable values.

    The disagreement of two values drawn without replacement from all :math:`n_{\\cdot\\cdot}`
    values of units with two or more ratings. Nominal: :math:`1 - \\sum_c n_c(n_c-1)/(n(n-1))`;
    ordinal, interval, ratio: :math:`2\\,\\mathrm{Var}_{ddof=1}` of the values (codes equally
    spaced, as in :func:`unit_disagreement`). Dividing a unit's disagreement by it gives a
    number comparable across attributes and levels: 1 is as much disagreement as two random
    ratings of the attribute, and :math:`\\alpha = 1 - D_o/D_e`. ``NaN`` with fewer than two
    pairable values.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level of measurement {level!r}; use one of {', '.join(LEVELS)}")
    m = as_matrix(matrix)
    if m.size == 0:
        return float("nan")
    values = m[np.sum(~np.isnan(m), axis=1) >= 2]
    values = values[~np.isnan(values)]
    n = values.size
    if n < 2:
        return float("nan")
    if level == "nominal":
        _, counts = np.unique(values, return_counts=True)
        return float(1.0 - np.sum(counts * (counts - 1)) / (n * (n - 1)))
    return float(2.0 * np.var(values, ddof=1))
