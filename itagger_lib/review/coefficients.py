"""Inter-rater agreement coefficients over a units × raters matrix.

Every function takes a *reliability matrix*: one row per unit (image), one column per rater,
``NaN`` where a rater did not rate a unit. Values are numeric codes (category codes for
nominal data, ranks or scores otherwise). :func:`ratings_matrix` builds one from long ratings.

Conventions for data that cannot give a coefficient (documented in ``docs/agreement.md``):

* fewer than two pairable values (no unit rated by two raters), or all values missing → ``NaN``;
* no variation at all (one category everywhere): expected disagreement is zero, so
  alpha, kappa and AC1 are 0/0 → ``NaN``; :func:`undefined_reason` says why, and percent
  agreement (which is 1.0 then) still reports the observed agreement.

These functions never raise on such data; they raise ``ValueError`` only for a bad argument
(an unknown level of measurement or weighting).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import krippendorff
import numpy as np
import pandas as pd

__all__ = [
    "LEVELS",
    "Interval",
    "as_matrix",
    "bootstrap_ci",
    "cohen_kappa",
    "fleiss_kappa",
    "fleiss_kappa_counts",
    "gwet_ac1",
    "icc",
    "krippendorff_alpha",
    "pairable",
    "percent_agreement",
    "ratings_matrix",
    "undefined_reason",
]

LEVELS = ("nominal", "ordinal", "interval", "ratio")
ICC_FORMS = ("ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)")


def as_matrix(matrix: pd.DataFrame | np.ndarray) -> np.ndarray:
    return np.asarray(matrix, dtype=float).reshape(len(matrix), -1) if len(matrix) else np.empty((0, 0))


def ratings_matrix(
    ratings: pd.DataFrame, unit: str = "image_id", rater: str = "rater", value: str = "value"
) -> pd.DataFrame:
    """Pivot long ratings to a units × raters matrix (``NaN`` = not rated).

    A rater who rated a unit more than once (repeats) counts with their first rating, in the
    order of the frame; repeated items belong to test–retest, not to inter-rater agreement.
    """
    first = ratings.drop_duplicates([unit, rater], keep="first")
    return first.pivot(index=unit, columns=rater, values=value).astype(float)


def pairable(matrix: pd.DataFrame | np.ndarray) -> tuple[int, int]:
    """Number of pairable units and pairable values.

    A unit is pairable when at least two raters rated it; the pairable values are the
    values in those units (Krippendorff's :math:`n_{\\cdot\\cdot}`).

    Returns
    -------
    (n_units, n_values) : tuple of int
    """
    m = as_matrix(matrix)
    if m.size == 0:
        return 0, 0
    counts = np.sum(~np.isnan(m), axis=1)
    keep = counts >= 2
    return int(keep.sum()), int(counts[keep].sum())


def undefined_reason(matrix: pd.DataFrame | np.ndarray) -> str:
    """Why a chance-corrected coefficient is undefined on ``matrix``, or ``""`` if it is not."""
    m = as_matrix(matrix)
    if m.size == 0 or np.all(np.isnan(m)):
        return "no ratings"
    if m.shape[1] < 2:
        return "fewer than 2 raters"
    n_units, _ = pairable(m)
    if n_units == 0:
        return "no unit rated by 2 or more raters"
    values = m[np.sum(~np.isnan(m), axis=1) >= 2]
    if np.unique(values[~np.isnan(values)]).size < 2:
        return "a single value everywhere (no variation): expected disagreement is 0"
    return ""


def krippendorff_alpha(
    matrix: pd.DataFrame | np.ndarray,
    level: str = "nominal",
    value_domain: list[float] | None = None,
) -> float:
    """Krippendorff's alpha at a level of measurement, with missing data.

    .. math:: \\alpha = 1 - \\frac{D_o}{D_e}
              = 1 - (n_{\\cdot\\cdot} - 1)
                \\frac{\\sum_c \\sum_k o_{ck}\\, \\delta^2_{ck}}{\\sum_c \\sum_k n_c n_k\\, \\delta^2_{ck}}

    where :math:`o_{ck}` is the coincidence matrix of pairable values, :math:`n_c` its
    margins and :math:`\\delta^2` the metric of the level (nominal: 0/1; ordinal: squared
    cumulative-frequency rank distance; interval: :math:`(c-k)^2`; ratio:
    :math:`((c-k)/(c+k))^2`). Computed with the ``krippendorff`` package (Castro, 2017);
    interval alpha in closed form (:func:`_interval_alpha`), which scales to continuous ratings.

    Parameters
    ----------
    matrix : units × raters, ``NaN`` = missing.
    level : ``"nominal"``, ``"ordinal"``, ``"interval"`` or ``"ratio"``.
    value_domain : the ordered possible values (codebook levels); for ordinal data it fixes
        the order of categories. Default: the values observed.

    Returns
    -------
    float
        In ``[-1, 1]`` (1 = perfect, 0 = chance); ``NaN`` when undefined (see
        :func:`undefined_reason`).

    References
    ----------
    Krippendorff, K. (2011). Computing Krippendorff's alpha-reliability. Annenberg School
    for Communication, University of Pennsylvania. Hayes, A. F., & Krippendorff, K. (2007).
    Answering the call for a standard reliability measure for coding data. Communication
    Methods and Measures, 1(1), 77–89.
    """
    if level not in LEVELS:
        raise ValueError(f"unknown level of measurement {level!r}; use one of {', '.join(LEVELS)}")
    m = as_matrix(matrix)
    if undefined_reason(m):
        return float("nan")
    if level == "interval":
        return _interval_alpha(m)
    domain = None
    if level in ("nominal", "ordinal"):
        domain = np.unique(m[~np.isnan(m)])
        if value_domain is not None:
            domain = np.union1d(np.asarray(value_domain, dtype=float), domain)
    return float(krippendorff.alpha(m.T, value_domain=domain, level_of_measurement=cast(Any, level)))


def _interval_alpha(m: np.ndarray) -> float:
    """Interval alpha in closed form, O(values): no coincidence matrix over distinct values.

    With :math:`\\sum_{i \\ne j} (x_i - x_j)^2 = 2 m\\, SS` for ``m`` values with sum of
    squared deviations ``SS``: :math:`D_o = \\frac{1}{n_{\\cdot\\cdot}} \\sum_u \\frac{2 m_u SS_u}{m_u - 1}`
    and :math:`D_e = \\frac{2 n_{\\cdot\\cdot} SS}{n_{\\cdot\\cdot}(n_{\\cdot\\cdot} - 1)}` over the
    pairable values. Equal to the ``krippendorff`` package's result (tested), but usable on
    continuous ratings with many distinct values.
    """
    m = m[np.sum(~np.isnan(m), axis=1) >= 2]
    counts = np.sum(~np.isnan(m), axis=1)
    means = np.nanmean(m, axis=1)
    ss_units = np.nansum((m - means[:, None]) ** 2, axis=1)
    values = m[~np.isnan(m)]
    n = values.size
    observed = float(np.sum(2 * counts * ss_units / (counts - 1))) / n
    expected = 2 * n * float(np.sum((values - values.mean()) ** 2)) / (n * (n - 1))
    return 1.0 - observed / expected


def _categories(values: np.ndarray, categories: list[float] | None) -> np.ndarray:
    observed = np.unique(values[~np.isnan(values)])
    if categories is None:
        return observed
    return np.asarray(categories, dtype=float)


def cohen_kappa(
    a: np.ndarray | pd.Series,
    b: np.ndarray | pd.Series,
    weights: str | None = None,
    categories: list[float] | None = None,
) -> float:
    """Cohen's kappa for two raters, unweighted or linear/quadratic weighted.

    .. math:: \\kappa_w = 1 - \\frac{\\sum_{ij} w_{ij} p_{ij}}{\\sum_{ij} w_{ij} p_{i\\cdot} p_{\\cdot j}}

    with disagreement weights :math:`w_{ij}` = 0 on the diagonal and 1 off it (unweighted),
    :math:`|i-j|` (linear) or :math:`(i-j)^2` (quadratic), where :math:`i, j` are the
    category *indices* in ``categories`` order (as in scikit-learn). Units missing either
    rating are dropped.

    Returns
    -------
    float
        In ``[-1, 1]``; ``NaN`` with fewer than one shared unit or no variation.

    References
    ----------
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and
    Psychological Measurement, 20, 37–46. Cohen, J. (1968). Weighted kappa. Psychological
    Bulletin, 70(4), 213–220.
    """
    if weights not in (None, "linear", "quadratic"):
        raise ValueError(f"unknown kappa weights {weights!r}; use None, 'linear' or 'quadratic'")
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    both = ~np.isnan(x) & ~np.isnan(y)
    x, y = x[both], y[both]
    if x.size == 0:
        return float("nan")
    cats = _categories(np.concatenate([x, y]), categories)
    q = cats.size
    ix, iy = np.searchsorted(cats, x), np.searchsorted(cats, y)
    observed = np.zeros((q, q))
    np.add.at(observed, (ix, iy), 1.0)
    observed /= observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0))
    idx = np.arange(q)
    distance = np.abs(idx[:, None] - idx[None, :]).astype(float)
    w = {None: (distance > 0).astype(float), "linear": distance, "quadratic": distance**2}[weights]
    denominator = float(np.sum(w * expected))
    if denominator == 0.0:
        return float("nan")
    return 1.0 - float(np.sum(w * observed)) / denominator


def _counts(matrix: pd.DataFrame | np.ndarray, categories: list[float] | None) -> np.ndarray:
    """units × categories table of how many raters put each unit in each category."""
    m = as_matrix(matrix)
    cats = _categories(m, categories)
    return np.stack([np.sum(m == c, axis=1) for c in cats], axis=1).astype(float)


def fleiss_kappa_counts(counts: np.ndarray) -> float:
    """Fleiss' kappa from a units × categories table of rater counts.

    .. math:: \\kappa = \\frac{\\bar P - \\bar P_e}{1 - \\bar P_e},\\quad
              P_i = \\frac{\\sum_j n_{ij}(n_{ij}-1)}{n_i(n_i-1)},\\quad
              \\bar P_e = \\sum_j p_j^2,\\ p_j = \\frac{\\sum_i n_{ij}}{\\sum_i n_i}

    Units with fewer than two ratings are dropped; a varying number of raters per unit is
    allowed (each unit's :math:`P_i` uses its own :math:`n_i`), which reduces to Fleiss
    (1971) when :math:`n_i` is constant.

    References
    ----------
    Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters.
    Psychological Bulletin, 76(5), 378–382.
    """
    table = np.asarray(counts, dtype=float)
    n_i = table.sum(axis=1)
    table, n_i = table[n_i >= 2], n_i[n_i >= 2]
    if table.size == 0:
        return float("nan")
    p_i = np.sum(table * (table - 1), axis=1) / (n_i * (n_i - 1))
    p_j = table.sum(axis=0) / n_i.sum()
    p_e = float(np.sum(p_j**2))
    if p_e >= 1.0:
        return float("nan")
    return (float(p_i.mean()) - p_e) / (1.0 - p_e)


def fleiss_kappa(matrix: pd.DataFrame | np.ndarray, categories: list[float] | None = None) -> float:
    """Fleiss' kappa of a units × raters matrix (nominal data); see :func:`fleiss_kappa_counts`."""
    if undefined_reason(matrix):
        return float("nan")
    return fleiss_kappa_counts(_counts(matrix, categories))


def gwet_ac1(matrix: pd.DataFrame | np.ndarray, categories: list[float] | None = None) -> float:
    """Gwet's AC1 for any number of raters, with missing data (nominal data).

    .. math:: AC_1 = \\frac{p_a - p_e}{1 - p_e},\\quad
              p_a = \\frac{1}{n'}\\sum_{i: r_i \\ge 2} \\sum_k \\frac{r_{ik}(r_{ik}-1)}{r_i(r_i-1)},\\quad
              p_e = \\frac{1}{q-1} \\sum_k \\pi_k (1-\\pi_k),\\quad
              \\pi_k = \\frac{1}{n}\\sum_{i: r_i \\ge 1} \\frac{r_{ik}}{r_i}

    :math:`n'` counts units rated at least twice, :math:`n` units rated at least once,
    :math:`q` the number of categories (``categories`` if given, else those observed).
    Unlike kappa, AC1 stays high when agreement is high on a skewed prevalence.

    References
    ----------
    Gwet, K. L. (2008). Computing inter-rater reliability and its variance in the presence
    of high agreement. British Journal of Mathematical and Statistical Psychology, 61,
    29–48. Gwet, K. L. (2014). Handbook of Inter-Rater Reliability (4th ed.), ch. 2 and 4.
    """
    if undefined_reason(matrix):
        return float("nan")
    counts = _counts(matrix, categories)
    q = counts.shape[1]
    r_i = counts.sum(axis=1)
    rated, paired = counts[r_i >= 1], counts[r_i >= 2]
    r_rated, r_paired = r_i[r_i >= 1], r_i[r_i >= 2]
    p_a = float(np.mean(np.sum(paired * (paired - 1), axis=1) / (r_paired * (r_paired - 1))))
    pi_k = np.mean(rated / r_rated[:, None], axis=0)
    p_e = float(np.sum(pi_k * (1 - pi_k)) / (q - 1))
    return (p_a - p_e) / (1.0 - p_e)


def percent_agreement(matrix: pd.DataFrame | np.ndarray) -> float:
    """Share of agreeing pairs among all pairable rater pairs (exact equality).

    .. math:: P_o = \\frac{\\sum_i \\sum_k r_{ik}(r_{ik}-1)}{\\sum_i r_i (r_i - 1)}

    pooled over units rated at least twice (a unit with more raters weighs more). In
    ``[0, 1]``; ``NaN`` when no unit has two ratings. Not chance-corrected.
    """
    m = as_matrix(matrix)
    if m.size == 0 or pairable(m)[0] == 0:
        return float("nan")
    counts = _counts(m, None)
    r_i = counts.sum(axis=1)
    return float(np.sum(counts * (counts - 1)) / np.sum(r_i * (r_i - 1)))


def icc(matrix: pd.DataFrame | np.ndarray, form: str = "ICC(2,1)") -> float:
    """Intraclass correlation (Shrout & Fleiss, 1979) from two-way ANOVA mean squares.

    Only units rated by every rater (complete rows) enter. With :math:`n` units, :math:`k`
    raters and mean squares for units (BMS), raters (JMS), residual (EMS) and within units
    (WMS):

    * ICC(1,1) = (BMS − WMS) / (BMS + (k−1) WMS) — one-way random, each unit its own raters;
    * ICC(2,1) = (BMS − EMS) / (BMS + (k−1) EMS + k (JMS − EMS)/n) — two-way random,
      absolute agreement, single rater (McGraw & Wong's ICC(A,1));
    * ICC(3,1) = (BMS − EMS) / (BMS + (k−1) EMS) — two-way mixed, consistency, single rater
      (McGraw & Wong's ICC(C,1));
    * ICC(1,k), ICC(2,k), ICC(3,k): the same for the mean of the k raters.

    ICC(2,1) is the default: raters are a sample of possible raters and their level
    differences count as disagreement.

    Returns
    -------
    float
        At most 1; ``NaN`` with fewer than 2 complete units, fewer than 2 raters or no
        variance.

    References
    ----------
    Shrout, P. E., & Fleiss, J. L. (1979). Intraclass correlations: uses in assessing rater
    reliability. Psychological Bulletin, 86(2), 420–428. McGraw, K. O., & Wong, S. P. (1996).
    Forming inferences about some intraclass correlation coefficients. Psychological
    Methods, 1(1), 30–46.
    """
    if form not in ICC_FORMS:
        raise ValueError(f"unknown ICC form {form!r}; use one of {', '.join(ICC_FORMS)}")
    m = as_matrix(matrix)
    if m.size == 0:
        return float("nan")
    m = m[~np.any(np.isnan(m), axis=1)]
    n, k = m.shape
    if n < 2 or k < 2:
        return float("nan")
    grand = m.mean()
    ss_units = k * np.sum((m.mean(axis=1) - grand) ** 2)
    ss_raters = n * np.sum((m.mean(axis=0) - grand) ** 2)
    ss_total = np.sum((m - grand) ** 2)
    ss_error = ss_total - ss_units - ss_raters
    bms = ss_units / (n - 1)
    jms = ss_raters / (k - 1)
    ems = ss_error / ((n - 1) * (k - 1))
    wms = (ss_raters + ss_error) / (n * (k - 1))
    numerator_denominator = {
        "ICC(1,1)": (bms - wms, bms + (k - 1) * wms),
        "ICC(2,1)": (bms - ems, bms + (k - 1) * ems + k * (jms - ems) / n),
        "ICC(3,1)": (bms - ems, bms + (k - 1) * ems),
        "ICC(1,k)": (bms - wms, bms),
        "ICC(2,k)": (bms - ems, bms + (jms - ems) / n),
        "ICC(3,k)": (bms - ems, bms),
    }
    numerator, denominator = numerator_denominator[form]
    if denominator == 0:
        return float("nan")
    return float(numerator / denominator)


@dataclass(frozen=True)
class Interval:
    """A bootstrap percentile confidence interval and the replicates that gave it."""

    low: float
    high: float
    n_boot: int
    n_valid: int


def bootstrap_ci(
    matrix: pd.DataFrame | np.ndarray,
    statistic: Callable[[np.ndarray], float],
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic``, resampling units (rows).

    Each of ``n_boot`` replicates draws as many units as ``matrix`` has, with replacement,
    from a ``numpy.random.default_rng(seed)`` stream, so a result is reproducible. Replicates
    where the statistic is undefined (``NaN``) are left out; ``n_valid`` says how many
    remained. The interval is the ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles.
    Units are treated as exchangeable; raters are held fixed.

    References
    ----------
    Efron, B., & Tibshirani, R. J. (1993). An Introduction to the Bootstrap, ch. 13.
    Hayes & Krippendorff (2007) bootstrap alpha by resampling pairable values; resampling
    units is the simpler, cluster-respecting variant used here.
    """
    m = as_matrix(matrix)
    if m.shape[0] == 0 or n_boot <= 0:
        return Interval(float("nan"), float("nan"), n_boot, 0)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, m.shape[0], size=(n_boot, m.shape[0]))
    values = np.array([statistic(m[rows]) for rows in picks], dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return Interval(float("nan"), float("nan"), n_boot, 0)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return Interval(float(low), float(high), n_boot, int(values.size))
