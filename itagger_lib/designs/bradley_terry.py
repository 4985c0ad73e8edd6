"""Bradley–Terry scores of items from pairwise judgements, with standard errors and bootstrap.

A judgement is a pair of items ``(a, b)`` and an outcome ``y``: 1 when ``a`` was chosen, 0
when ``b`` was, ½ for a tie. Scores are on the logit scale and centred (they sum to zero).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

from itagger_lib.designs._graph import EXACT_LIMIT, ComparisonGraph, maximise
from itagger_lib.designs.scores import DEFAULT_PRIOR_SD, ScoreFit, ridge
from itagger_lib.errors import ScienceError

__all__ = ["bootstrap_scores", "bradley_terry", "check_pairs"]


def check_pairs(
    pairs: np.ndarray, outcomes: np.ndarray | None, n_items: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate judgements; returns ``(pairs as int64 (m, 2), outcomes as float, n_items)``."""
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise ScienceError(f"pairs must be an integer array of shape (m, 2), not {pairs.shape}")
    pairs = pairs.astype(np.int64)
    if len(pairs) == 0:
        raise ScienceError("no judgements: pairs is empty")
    if n_items is None:
        n_items = int(pairs.max()) + 1
    if pairs.min() < 0 or pairs.max() >= n_items:
        raise ScienceError(f"pairs hold item numbers outside 0..{n_items - 1}")
    if np.any(pairs[:, 0] == pairs[:, 1]):
        row = int(np.flatnonzero(pairs[:, 0] == pairs[:, 1])[0])
        raise ScienceError(f"judgement {row} compares item {pairs[row, 0]} with itself")
    if outcomes is None:
        outcomes = np.ones(len(pairs))
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if outcomes.shape != (len(pairs),):
        raise ScienceError(f"outcomes must have one value per pair ({len(pairs)}), not {outcomes.shape}")
    if np.any((outcomes < 0) | (outcomes > 1)) or np.isnan(outcomes).any():
        raise ScienceError("outcomes must lie in [0, 1]: 1 first chosen, 0 second chosen, 0.5 a tie")
    return pairs, outcomes, n_items


def bradley_terry(
    pairs: np.ndarray,
    outcomes: np.ndarray | None = None,
    *,
    n_items: int | None = None,
    prior_sd: float | None = DEFAULT_PRIOR_SD,
    exact_limit: int = EXACT_LIMIT,
) -> ScoreFit:
    """Fit Bradley–Terry scores by Newton's method on the (penalised) log-likelihood.

    ``P(a chosen over b) = σ(θ_a - θ_b) = π_a / (π_a + π_b)`` with ``π = exp θ``. The fit
    maximises ``Σ_k [y_k log σ(d_k) + (1 - y_k) log σ(-d_k)] - |θ|²/(2 prior_sd²)`` with
    ``d_k = θ_a - θ_b``; a tie (``y = ½``) counts as half a win for each side. The Gaussian
    prior keeps every score finite when the comparison graph is disconnected or an item
    always wins; ``prior_sd=None`` gives the maximum-likelihood estimate under the
    sum-to-zero constraint, which exists only when the graph of "beat" relations is
    strongly connected (Ford 1957; Hunter 2004, assumption 1), else ``ScienceError``.

    Each Newton step solves ``(L_w + I/prior_sd²) δ = ∇`` with ``L_w`` the Laplacian of the
    comparison graph weighted by ``n_ab p_ab (1 - p_ab)`` (the Fisher information), by
    Jacobi-preconditioned conjugate gradients: linear in the number of distinct pairs.
    Standard errors are the square roots of the diagonal of ``C (L_w + I/prior_sd²)⁻¹ C``
    (``C`` centres the scores): with ``prior_sd=None`` the Moore–Penrose inverse of the
    Fisher information under the sum-to-zero constraint; see ``ComparisonGraph``.

    Parameters
    ----------
    pairs : (m, 2) int array
        Items shown together (0-based item numbers).
    outcomes : (m,) float array, optional
        1 when the first item was chosen, 0 when the second, 0.5 for a tie; default all 1
        (``pairs`` as ``(winner, loser)``).
    n_items : int, optional
        Number of items (default ``pairs.max() + 1``); items never compared get score 0
        and standard error about ``prior_sd``.
    prior_sd : float or None
        Standard deviation of the Gaussian prior on each score (logits); default 3, weak
        next to the spread of perceived qualities (about 1 logit).
    exact_limit : int
        Largest number of items whose standard errors come from a dense inverse.

    Returns
    -------
    ScoreFit
        Scores in logits (a difference of 1 is odds of e ≈ 2.7 : 1), centred.

    References
    ----------
    Bradley, R. A. & Terry, M. E. (1952). Rank analysis of incomplete block designs: I. The
    method of paired comparisons. Biometrika 39(3/4), 324–345.
    Hunter, D. R. (2004). MM algorithms for generalized Bradley–Terry models. Annals of
    Statistics 32(1), 384–406.
    Ford, L. R. (1957). Solution of a ranking problem from binary comparisons. American
    Mathematical Monthly 64(8), 28–33.
    """
    pairs, outcomes, n_items = check_pairs(pairs, outcomes, n_items)
    precision = ridge(prior_sd)
    if precision == 0:
        _require_strongly_connected(pairs, outcomes, n_items)
    graph = ComparisonGraph(n_items, pairs[:, 0], pairs[:, 1])
    theta, weights, iterations = _fit(graph, pairs, outcomes, np.ones(len(pairs)), precision)
    variances, method = graph.centred_variances(weights, precision, exact_limit)
    return ScoreFit(
        scores=theta,
        standard_errors=np.sqrt(np.maximum(variances, 0.0)),
        judgements=np.bincount(pairs.ravel(), minlength=n_items),
        components=int(np.unique(graph.components()).size),
        prior_sd=prior_sd,
        iterations=iterations,
        se_method=method,
    )


def _fit(
    graph: ComparisonGraph,
    pairs: np.ndarray,
    outcomes: np.ndarray,
    multiplicity: np.ndarray,
    precision: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Centred MAP scores, the Fisher weights of the distinct pairs, Newton steps."""
    n_items = graph.n_items
    # One row per unordered pair: how often it was judged and the wins of its lower item.
    low_wins = np.where(pairs[:, 0] < pairs[:, 1], outcomes, 1.0 - outcomes)
    counts = graph.edge_weights(multiplicity)
    wins = graph.edge_weights(multiplicity * low_wins)
    low, high = graph.low, graph.high

    def model(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        difference = theta[low] - theta[high]
        p = expit(difference)
        loglik = float(wins @ log_expit(difference) + (counts - wins) @ log_expit(-difference))
        residual = wins - counts * p
        gradient = np.bincount(low, residual, n_items) - np.bincount(high, residual, n_items)
        return loglik, gradient, counts * p * (1.0 - p)

    theta, weights, iterations = maximise(model, graph, precision)
    return theta - theta.mean(), weights, iterations


def _require_strongly_connected(pairs: np.ndarray, outcomes: np.ndarray, n_items: int) -> None:
    # An edge a → b when a was chosen over b at least once (a tie counts both ways).
    forward = outcomes > 0
    backward = outcomes < 1
    source = np.concatenate([pairs[forward, 0], pairs[backward, 1]])
    target = np.concatenate([pairs[forward, 1], pairs[backward, 0]])
    beats = sp.csr_matrix((np.ones(len(source)), (source, target)), shape=(n_items, n_items))
    parts = connected_components(beats, directed=True, connection="strong")[0]
    if parts > 1:
        raise ScienceError(
            f"the maximum-likelihood scores do not exist: the items fall into {parts} groups "
            "where one group never lost to another (or an item was never compared); "
            "give a finite prior_sd"
        )


def bootstrap_scores(
    pairs: np.ndarray,
    outcomes: np.ndarray | None = None,
    *,
    n_items: int | None = None,
    clusters: np.ndarray | None = None,
    n_boot: int = 200,
    prior_sd: float = DEFAULT_PRIOR_SD,
    seed: int = 0,
) -> np.ndarray:
    """Bradley–Terry scores refitted on ``n_boot`` bootstrap resamples of the judgements.

    Judgements are drawn with replacement; with ``clusters`` (for example the rater of each
    judgement) whole clusters are drawn, which keeps the dependence between one rater's
    judgements and gives honest intervals when raters disagree systematically. Percentile
    intervals: ``np.quantile(result, [0.025, 0.975], axis=0)``.

    Returns
    -------
    (n_boot, n_items) float array
        Centred scores of each resample.

    References
    ----------
    Efron, B. & Tibshirani, R. J. (1993). An Introduction to the Bootstrap, ch. 13 (percentile
    intervals). Davison, A. C. & Hinkley, D. V. (1997). Bootstrap Methods and their
    Application, §3.8 (resampling clusters).
    """
    pairs, outcomes, n_items = check_pairs(pairs, outcomes, n_items)
    if n_boot < 1:
        raise ScienceError(f"n_boot must be at least 1, not {n_boot}")
    precision = ridge(prior_sd)
    rng = np.random.default_rng(seed)
    graph = ComparisonGraph(n_items, pairs[:, 0], pairs[:, 1])
    if clusters is None:
        groups = np.arange(len(pairs))
    else:
        clusters = np.asarray(clusters)
        if clusters.shape != (len(pairs),):
            raise ScienceError(f"clusters must give one label per judgement ({len(pairs)})")
        groups = np.unique(clusters, return_inverse=True)[1]
    n_groups = int(groups.max()) + 1
    results = np.empty((n_boot, n_items))
    for b in range(n_boot):
        # A resample as multiplicities: how often each judgement (or cluster) was drawn.
        drawn = np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)
        results[b] = _fit(graph, pairs, outcomes, drawn[groups].astype(np.float64), precision)[0]
    return results
