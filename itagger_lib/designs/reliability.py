"""Reliability of comparative scores: split-half reliability and circular triads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp
from scipy.stats import pearsonr, spearmanr

from itagger_lib.designs.best_worst import best_worst_counts, best_worst_mnl, check_trials
from itagger_lib.designs.bradley_terry import bradley_terry, check_pairs
from itagger_lib.designs.scores import DEFAULT_PRIOR_SD
from itagger_lib.errors import ScienceError

__all__ = [
    "SplitHalf",
    "Triads",
    "best_worst_split_half",
    "circular_triads",
    "pairwise_split_half",
    "spearman_brown",
    "split_half",
]

Correlation = Literal["pearson", "spearman"]


def spearman_brown(r: float | np.ndarray, factor: float = 2.0) -> float | np.ndarray:
    """Reliability of a measure ``factor`` times as long: ``ρ* = f·r / (1 + (f - 1)·r)``.

    With ``factor=2`` it turns the correlation of two half-length scores into the
    reliability of the full-length score. In [-1, 1] for ``r`` in [-1, 1] and ``f ≥ 1``
    (undefined at ``r = -1/(f-1)``).

    References
    ----------
    Spearman, C. (1910). Correlation calculated from faulty data. British Journal of
    Psychology 3, 271–295. Brown, W. (1910). Some experimental results in the correlation
    of mental abilities. British Journal of Psychology 3, 296–322.
    """
    return factor * r / (1.0 + (factor - 1.0) * r)


@dataclass(frozen=True)
class SplitHalf:
    """Split-half reliability: the mean Spearman–Brown corrected correlation over splits.

    ``correlations`` are the raw half-vs-half correlations of each split, ``corrected``
    their Spearman–Brown values, ``items`` the number of items scored in both halves
    (the correlation's sample size) in each split.
    """

    reliability: float
    correlations: np.ndarray
    corrected: np.ndarray
    items: np.ndarray


def split_half(
    n_judgements: int,
    score: Callable[[np.ndarray], np.ndarray],
    *,
    clusters: np.ndarray | None = None,
    n_splits: int = 20,
    method: Correlation = "pearson",
    seed: int = 0,
) -> SplitHalf:
    """Split the judgements at random in two halves, score each, correlate, correct.

    ``score(mask)`` gets a boolean mask of the judgements in one half and returns one score
    per item, NaN for items without judgements in that half. Each split draws a random half
    of the judgements (or, with ``clusters`` such as the rater of each judgement, a random
    half of the clusters, so one rater's judgements stay together); the correlation
    ``r`` of the two halves' scores over items scored in both is corrected with
    :func:`spearman_brown`. The result is the mean over ``n_splits`` splits.

    Returns
    -------
    SplitHalf
        ``reliability`` in [-1, 1]; 1 = the halves rank the items identically.

    References
    ----------
    Kiritchenko, S. & Mohammad, S. M. (2017). Best-worst scaling more reliable than rating
    scales: a case study on sentiment intensity annotation. ACL 2017, 465–470 (split-half
    reliability of comparative annotations). Spearman (1910); Brown (1910).
    """
    if n_splits < 1:
        raise ScienceError(f"n_splits must be at least 1, not {n_splits}")
    if method not in ("pearson", "spearman"):
        raise ScienceError(f'method must be "pearson" or "spearman", not {method!r}')
    if clusters is None:
        units = np.arange(n_judgements)
    else:
        clusters = np.asarray(clusters)
        if clusters.shape != (n_judgements,):
            raise ScienceError(f"clusters must give one label per judgement ({n_judgements})")
        units = np.unique(clusters, return_inverse=True)[1]
    n_units = int(units.max()) + 1 if n_judgements else 0
    if n_units < 2:
        raise ScienceError("split-half reliability needs at least two judgements (or clusters)")
    rng = np.random.default_rng(seed)
    raw = np.empty(n_splits)
    items = np.empty(n_splits, dtype=np.int64)
    correlate = pearsonr if method == "pearson" else spearmanr
    for s in range(n_splits):
        first = np.zeros(n_units, dtype=bool)
        first[rng.permutation(n_units)[: n_units // 2]] = True
        in_first = first[units]
        a, b = score(in_first), score(~in_first)
        both = ~np.isnan(a) & ~np.isnan(b)
        items[s] = int(both.sum())
        if items[s] < 3 or np.ptp(a[both]) == 0 or np.ptp(b[both]) == 0:
            raise ScienceError(
                f"split {s}: only {items[s]} items are scored in both halves (or one half "
                "gives every item the same score); collect more judgements per item"
            )
        raw[s] = float(correlate(a[both], b[both])[0])
    corrected = np.asarray(spearman_brown(raw))
    return SplitHalf(float(corrected.mean()), raw, corrected, items)


def pairwise_split_half(
    pairs: np.ndarray,
    outcomes: np.ndarray | None = None,
    *,
    n_items: int | None = None,
    clusters: np.ndarray | None = None,
    n_splits: int = 20,
    method: Correlation = "pearson",
    prior_sd: float = DEFAULT_PRIOR_SD,
    seed: int = 0,
) -> SplitHalf:
    """Split-half reliability of Bradley–Terry scores (see :func:`split_half`)."""
    pairs, outcomes, n_items = check_pairs(pairs, outcomes, n_items)

    def score(mask: np.ndarray) -> np.ndarray:
        fit = bradley_terry(pairs[mask], outcomes[mask], n_items=n_items, prior_sd=prior_sd, exact_limit=0)
        return np.where(fit.judgements > 0, fit.scores, np.nan)

    return split_half(len(pairs), score, clusters=clusters, n_splits=n_splits, method=method, seed=seed)


def best_worst_split_half(
    blocks: np.ndarray,
    best: np.ndarray,
    worst: np.ndarray,
    *,
    n_items: int | None = None,
    scoring: Literal["counts", "mnl"] = "counts",
    clusters: np.ndarray | None = None,
    n_splits: int = 20,
    method: Correlation = "pearson",
    seed: int = 0,
) -> SplitHalf:
    """Split-half reliability of best–worst counting (or logit) scores; see :func:`split_half`."""
    blocks, _, _, n_items = check_trials(blocks, best, worst, n_items)
    best, worst = np.asarray(best), np.asarray(worst)
    if scoring not in ("counts", "mnl"):
        raise ScienceError(f'scoring must be "counts" or "mnl", not {scoring!r}')

    def score(mask: np.ndarray) -> np.ndarray:
        if scoring == "counts":
            return best_worst_counts(blocks[mask], best[mask], worst[mask], n_items=n_items).scores
        fit = best_worst_mnl(blocks[mask], best[mask], worst[mask], n_items=n_items, exact_limit=0)
        return np.where(fit.judgements > 0, fit.scores, np.nan)

    return split_half(len(blocks), score, clusters=clusters, n_splits=n_splits, method=method, seed=seed)


@dataclass(frozen=True)
class Triads:
    """Circular triads among judged triads: ``share = circular / judged`` (NaN if none)."""

    circular: int
    judged: int
    share: float


def circular_triads(
    pairs: np.ndarray,
    outcomes: np.ndarray | None = None,
    *,
    n_items: int | None = None,
    raters: np.ndarray | None = None,
) -> Triads:
    """Share of intransitive (circular) triads among the triads whose three pairs were judged.

    Each judged pair gets a direction from its majority: ``i → j`` when the outcomes of
    ``i`` against ``j`` sum to more than half their number (ties count ½); pairs with an
    exact draw have no direction, and triads containing one are not counted. A triad
    ``{i, j, k}`` is judged when all three pairs have a direction and circular when they
    form a cycle ``i → j → k → i``. With ``raters``, triads are formed inside each rater's
    judgements and counted over raters (Kendall & Babington Smith's consistency of a
    judge); without, over the pooled majority (which can be circular even when every
    rater is consistent, Condorcet's paradox).

    ``share`` is 0 for perfectly transitive judgements and about 0.25 for random choices
    (two of the eight orientations of a triangle are cycles). Counting uses sparse matrix
    products: ``judged = trace(U³)/6``, ``circular = trace(D³)/3`` for the undirected and
    directed graphs ``U`` and ``D``.

    References
    ----------
    Kendall, M. G. & Babington Smith, B. (1940). On the method of paired comparisons.
    Biometrika 31(3/4), 324–345.
    """
    pairs, outcomes, n_items = check_pairs(pairs, outcomes, n_items)
    if raters is None:
        owner = np.zeros(len(pairs), dtype=np.int64)
    else:
        raters = np.asarray(raters)
        if raters.shape != (len(pairs),):
            raise ScienceError(f"raters must give one label per judgement ({len(pairs)})")
        owner = np.unique(raters, return_inverse=True)[1].astype(np.int64)
    # One node per (rater, item), so triads never mix two raters' judgements.
    nodes, compact = np.unique(
        np.concatenate([owner, owner]) * n_items + pairs.T.ravel(), return_inverse=True
    )
    first, second = compact[: len(pairs)], compact[len(pairs) :]
    low, high = np.minimum(first, second), np.maximum(first, second)
    low_score = np.where(first < second, outcomes, 1.0 - outcomes) - 0.5
    keys, inverse = np.unique(low * len(nodes) + high, return_inverse=True)
    margin = np.bincount(inverse, low_score)
    decided = margin != 0
    a, b = keys[decided] // len(nodes), keys[decided] % len(nodes)
    winner = np.where(margin[decided] > 0, a, b)
    loser = np.where(margin[decided] > 0, b, a)
    size = len(nodes)
    directed = sp.csr_matrix((np.ones(len(winner)), (winner, loser)), shape=(size, size))
    undirected = directed + directed.T
    judged = round((undirected @ undirected).multiply(undirected).sum() / 6)
    circular = round((directed @ directed).multiply(directed.T).sum() / 3)
    return Triads(circular, judged, circular / judged if judged else float("nan"))
