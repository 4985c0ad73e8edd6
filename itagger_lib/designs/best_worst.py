"""Best–worst scaling: block designs of 4–5 images, counting scores and a logit model.

In each trial a rater sees ``k`` images and picks the best and the worst. A trial is a row
of ``blocks`` (item numbers) with the chosen ``best`` and ``worst`` item numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import log_softmax, softmax

from itagger_lib.designs._blocks import Avoid, schedule
from itagger_lib.designs._graph import EXACT_LIMIT, ComparisonGraph, maximise
from itagger_lib.designs.scores import DEFAULT_PRIOR_SD, ScoreFit, ridge
from itagger_lib.errors import ScienceError

__all__ = [
    "BestWorstCounts",
    "best_worst_counts",
    "best_worst_design",
    "best_worst_mnl",
    "check_trials",
]

ANNEAL_STEPS = 20_000


def best_worst_design(
    n_items: int,
    n_trials: int,
    block_size: int = 4,
    *,
    rater: int = 0,
    groups: np.ndarray | None = None,
    avoid: Avoid = "block",
    prefix_balance: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """A near-balanced incomplete block design of ``n_trials`` trials for one rater.

    Built like :func:`~itagger_lib.designs.pairs.rater_pairs` (rounds that each hold every
    item once, cut into blocks; the extras of the last round rotate over raters): every
    item appears ``⌊n_trials·k/n_items⌋`` times or once more, for this rater and over raters
    ``0 … R-1`` together; no item twice in a trial; with ``groups``, no two members of a
    near-duplicate group in one trial (``avoid="block"``) or one member of each group per
    rater (``avoid="rater"``). Pairs of items then share trials as evenly as the search
    reaches: where a pair may meet at most once it meets at most once, and dense designs
    are annealed toward equal co-occurrence ``λ`` (it finds exact BIBDs such as
    (v, k, λ) = (7, 4, 2), (9, 4, 3), (10, 4, 2), (13, 4, 1), not every time). Annealing
    moves items between rounds, so prefixes of the sequence are balanced only with
    ``prefix_balance=True`` (which costs evenness of pairs in small designs).

    Parameters
    ----------
    n_items : int
        Number of images.
    n_trials : int
        Trials for this rater.
    block_size : int
        Images per trial, 2 to 12; 4 or 5 is usual for best–worst scaling.
    rater, groups, avoid, seed
        As for ``rater_pairs``.
    prefix_balance : bool
        Keep every prefix of the trial sequence balanced within ±1.

    Returns
    -------
    (n_trials, block_size) int64 array
        Item numbers of each trial, in display order.

    References
    ----------
    Louviere, J. J., Flynn, T. N. & Marley, A. A. J. (2015). Best-Worst Scaling: Theory,
    Methods and Applications. Cambridge University Press (designs from BIBDs).
    Kirkpatrick, S., Gelatt, C. D. & Vecchi, M. P. (1983). Optimization by simulated
    annealing. Science 220, 671–680.
    """
    if not 2 <= block_size <= 12:
        raise ScienceError(f"block_size must be between 2 and 12 (4 or 5 is usual), not {block_size}")
    return schedule(
        n_items,
        n_trials,
        block_size,
        rater=rater,
        seed=seed,
        groups=groups,
        avoid=avoid,
        max_together=None,
        within_rounds=prefix_balance,
        anneal_steps=ANNEAL_STEPS,
    )


def check_trials(
    blocks: np.ndarray, best: np.ndarray, worst: np.ndarray, n_items: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Validate trials; returns ``(blocks, best position, worst position, n_items)``."""
    blocks = np.asarray(blocks)
    if blocks.ndim != 2 or blocks.shape[1] < 2 or not np.issubdtype(blocks.dtype, np.integer):
        raise ScienceError(f"blocks must be an integer array of shape (trials, k ≥ 2), not {blocks.shape}")
    if len(blocks) == 0:
        raise ScienceError("no trials: blocks is empty")
    blocks = blocks.astype(np.int64)
    if n_items is None:
        n_items = int(blocks.max()) + 1
    if blocks.min() < 0 or blocks.max() >= n_items:
        raise ScienceError(f"blocks hold item numbers outside 0..{n_items - 1}")
    ordered = np.sort(blocks, axis=1)
    repeated = np.flatnonzero((ordered[:, 1:] == ordered[:, :-1]).any(axis=1))
    if len(repeated):
        raise ScienceError(f"trial {repeated[0]} shows an item twice: {blocks[repeated[0]].tolist()}")
    positions = []
    for name, chosen in (("best", best), ("worst", worst)):
        chosen = np.asarray(chosen)
        if chosen.shape != (len(blocks),):
            raise ScienceError(f"{name} must give one item per trial ({len(blocks)}), not {chosen.shape}")
        hit = blocks == chosen[:, None]
        missing = np.flatnonzero(~hit.any(axis=1))
        if len(missing):
            row = missing[0]
            raise ScienceError(f"trial {row}: {name} item {chosen[row]} is not one of {blocks[row].tolist()}")
        positions.append(hit.argmax(axis=1))
    same = np.flatnonzero(positions[0] == positions[1])
    if len(same):
        raise ScienceError(f"trial {same[0]}: the same item is chosen as best and worst")
    return blocks, positions[0], positions[1], n_items


@dataclass(frozen=True)
class BestWorstCounts:
    """Counting scores: ``scores = (best - worst) / shown``, in [-1, 1]; NaN if never shown."""

    best: np.ndarray
    worst: np.ndarray
    shown: np.ndarray
    scores: np.ndarray


def best_worst_counts(
    blocks: np.ndarray, best: np.ndarray, worst: np.ndarray, *, n_items: int | None = None
) -> BestWorstCounts:
    """Best and worst counts of each item and the best-minus-worst score.

    ``score_i = (B_i - W_i) / n_i`` with ``B_i``, ``W_i`` the times item ``i`` was chosen
    best and worst and ``n_i`` the times it was shown. In balanced designs it ranks items
    nearly as the logit scores of :func:`best_worst_mnl` do (Marley, Islam & Hawkins
    2016); it needs no model and no fit, but has no standard error of its own.

    Returns
    -------
    BestWorstCounts
        Counts (ints) and scores in [-1, 1]; 1 = best every time shown.

    References
    ----------
    Louviere, J. J., Flynn, T. N. & Marley, A. A. J. (2015). Best-Worst Scaling: Theory,
    Methods and Applications. Cambridge University Press.
    Marley, A. A. J., Islam, T. & Hawkins, G. E. (2016). A formal and empirical comparison
    of two score measures for best–worst scaling. Journal of Choice Modelling 21, 15–24.
    """
    blocks, best_at, worst_at, n_items = check_trials(blocks, best, worst, n_items)
    rows = np.arange(len(blocks))
    best_counts = np.bincount(blocks[rows, best_at], minlength=n_items)
    worst_counts = np.bincount(blocks[rows, worst_at], minlength=n_items)
    shown = np.bincount(blocks.ravel(), minlength=n_items)
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(shown > 0, (best_counts - worst_counts) / shown, np.nan)
    return BestWorstCounts(best_counts, worst_counts, shown, scores)


def best_worst_mnl(
    blocks: np.ndarray,
    best: np.ndarray,
    worst: np.ndarray,
    *,
    n_items: int | None = None,
    prior_sd: float = DEFAULT_PRIOR_SD,
    exact_limit: int = EXACT_LIMIT,
) -> ScoreFit:
    """Multinomial-logit scores of the sequential best–worst model, with standard errors.

    The best of a trial ``S`` is chosen with ``P(b | S) = exp θ_b / Σ_{s∈S} exp θ_s``; the
    worst is then chosen among the rest with ``P(w | S∖b) = exp(-θ_w) / Σ_{s∈S∖b} exp(-θ_s)``
    (best first, then worst, on the same scale). The fit maximises the log-likelihood plus
    a Gaussian prior ``-|θ|²/(2 prior_sd²)`` by Newton's method: the negative Hessian of a
    choice from a set is the Laplacian of that set with weights ``p_i p_j`` (and ``q_i q_j``
    for the worst choice), so the same sparse solver and standard errors as Bradley–Terry
    apply (``ScoreFit``; scores in logits, centred). With trials of two the model is
    Bradley–Terry.

    Parameters
    ----------
    blocks : (t, k) int array
        Items of each trial.
    best, worst : (t,) int arrays
        The item chosen best and worst in each trial (item numbers, not positions).
    n_items : int, optional
        Number of items (default ``blocks.max() + 1``).
    prior_sd : float
        Standard deviation of the Gaussian prior on each score (logits).
    exact_limit : int
        Largest number of items whose standard errors come from a dense inverse.

    Returns
    -------
    ScoreFit

    References
    ----------
    Louviere, J. J., Flynn, T. N. & Marley, A. A. J. (2015). Best-Worst Scaling: Theory,
    Methods and Applications. Cambridge University Press (sequential best–worst models).
    Marley, A. A. J. & Louviere, J. J. (2005). Some probabilistic models of best, worst, and
    best–worst choices. Journal of Mathematical Psychology 49, 464–480.
    """
    blocks, best_at, worst_at, n_items = check_trials(blocks, best, worst, n_items)
    precision = ridge(prior_sd)
    if precision == 0:
        raise ScienceError("best_worst_mnl needs a finite prior_sd")
    k = blocks.shape[1]
    left, right = np.triu_indices(k, 1)
    graph = ComparisonGraph(n_items, blocks[:, left].ravel(), blocks[:, right].ravel())
    rows = np.arange(len(blocks))
    best_items = blocks[rows, best_at]
    worst_items = blocks[rows, worst_at]
    flat = blocks.ravel()
    mask = np.zeros(blocks.shape, dtype=bool)
    mask[rows, best_at] = True

    def model(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        utility = theta[blocks]
        # The best is out of the worst choice: its utility -θ goes to -∞.
        against = np.where(mask, -np.inf, -utility)
        log_p = log_softmax(utility, axis=1)
        log_q = log_softmax(against, axis=1)
        loglik = float(log_p[rows, best_at].sum() + log_q[rows, worst_at].sum())
        p = np.exp(log_p)
        q = softmax(against, axis=1)
        gradient = (
            np.bincount(best_items, minlength=n_items)
            - np.bincount(flat, p.ravel(), n_items)
            + np.bincount(flat, q.ravel(), n_items)
            - np.bincount(worst_items, minlength=n_items)
        )
        weights = p[:, left] * p[:, right] + q[:, left] * q[:, right]
        return loglik, gradient, graph.edge_weights(weights.ravel())

    theta, weights, iterations = maximise(model, graph, precision)
    variances, method = graph.centred_variances(weights, precision, exact_limit)
    return ScoreFit(
        scores=theta - theta.mean(),
        standard_errors=np.sqrt(np.maximum(variances, 0.0)),
        judgements=np.bincount(flat, minlength=n_items),
        components=int(np.unique(graph.components()).size),
        prior_sd=prior_sd,
        iterations=iterations,
        se_method=method,
    )
