"""Pair schedules for paired-comparison studies: balanced per rater, or adaptive.

Balanced schedules (:func:`rater_pairs`, :func:`pair_schedule`) show every image equally
often within ±1 (per rater, at every point of the rater's sequence, and over raters
``0 … R-1`` together), never give one rater the same pair twice, and can keep members of a
near-duplicate group apart. Adaptive choice (:func:`adaptive_pairs`) picks the pairs a
Bradley–Terry fit learns most from next.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
from scipy.special import expit

from itagger_lib.designs._blocks import Avoid, check_groups, schedule
from itagger_lib.errors import ScienceError

__all__ = ["adaptive_pairs", "information_gain", "pair_schedule", "pairs_per_rater", "rater_pairs"]


def rater_pairs(
    n_items: int,
    n_pairs: int,
    *,
    rater: int = 0,
    groups: np.ndarray | None = None,
    avoid: Avoid = "block",
    seed: int = 0,
) -> np.ndarray:
    """The balanced pair schedule of one rater, in the order to show it.

    The schedule is a stream of rounds, each a random permutation of all items, cut into
    consecutive pairs; the last, partial round holds the items ``r·e … r·e + e - 1`` of one
    random cycle shared by all raters (``e = 2·n_pairs mod n_items``, ``r = rater``). Hence:

    * the rater sees every item ``⌊2·n_pairs/n_items⌋`` or one more times, and every prefix
      of the schedule is balanced within ±1 as well;
    * raters ``0 … R-1`` together see every item equally often within ±1;
    * no pair comes twice and no item is paired with itself: a local search swaps items
      inside a round (which keeps both properties) until no pair breaks a rule; a
      complete design (every pair once) of more than 30 items is a round-robin tournament
      instead, whose prefixes are balanced within ±1 for an even number of items and
      within ±1 at the end of each round (±2 inside one) for an odd number;
    * with ``groups`` (a near-duplicate group label per item), ``avoid="block"`` never
      pairs two members of a group; ``avoid="rater"`` shows the rater one member of each
      group (member ``(rater + offset) mod size``, so members take turns over raters; every
      group, not every image, is then balanced).

    Left and right are drawn at random for each pair. A schedule depends only on
    ``(n_items, n_pairs, rater, groups, avoid, seed)``: the tagging app can make a
    newcomer's schedule without looking at anyone else's.

    Parameters
    ----------
    n_items : int
        Number of images (items are ``0 … n_items - 1``).
    n_pairs : int
        Pairs for this rater; at most ``n_items (n_items - 1) / 2`` (fewer with groups).
    rater : int
        The rater's position in the study (0, 1, 2, …), not a database id.
    groups : (n_items,) int array, optional
        Near-duplicate group of each item (see ``near_duplicate_groups``).
    avoid : {"block", "rater"}
        How groups are kept apart (see above).
    seed : int
        The study's seed; the same for every rater of a study.

    Returns
    -------
    (n_pairs, 2) int64 array
        ``(left, right)`` item numbers.

    References
    ----------
    David, H. A. (1988). The Method of Paired Comparisons, 2nd ed. Griffin, London.
    Salganik, M. J. & Levy, K. E. C. (2015). Wiki surveys: open and quantifiable
    social data collection. PLoS ONE 10(5), e0123483 (random pairs of the Place Pulse kind).
    """
    blocks = schedule(
        n_items,
        n_pairs,
        2,
        rater=rater,
        seed=seed,
        groups=groups,
        avoid=avoid,
        max_together=1,
    )
    flip = np.random.default_rng([seed, 3, rater]).random(n_pairs) < 0.5
    blocks[flip] = blocks[flip, ::-1]
    return blocks


def pair_schedule(
    n_items: int,
    n_pairs: int,
    n_raters: int,
    *,
    groups: np.ndarray | None = None,
    avoid: Avoid = "block",
    seed: int = 0,
) -> np.ndarray:
    """Balanced schedules of raters ``0 … n_raters - 1``: ``(n_raters, n_pairs, 2)``.

    Each row is ``rater_pairs(..., rater=r)``; together they show every item equally often
    within ±1 (with ``avoid="rater"``, every near-duplicate group).
    """
    if n_raters < 1:
        raise ScienceError(f"n_raters must be at least 1, not {n_raters}")
    return np.stack(
        [
            rater_pairs(n_items, n_pairs, rater=r, groups=groups, avoid=avoid, seed=seed)
            for r in range(n_raters)
        ]
    )


def pairs_per_rater(n_items: int, pairs_per_image: float, n_raters: int) -> int:
    """Pairs each of ``n_raters`` must judge so each image is in ``pairs_per_image`` pairs.

    ``⌈n_items · pairs_per_image / (2 · n_raters)⌉``: a pair shows two images.
    """
    if n_items < 2 or pairs_per_image <= 0 or n_raters < 1:
        raise ScienceError("need at least 2 items, pairs_per_image > 0 and at least 1 rater")
    return math.ceil(n_items * pairs_per_image / (2 * n_raters))


def information_gain(scores: np.ndarray, variances: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Expected information from judging each pair once, under the current fit.

    ``g_ij = ½ log(1 + p_ij (1 - p_ij) v_ij)`` with ``p_ij = σ(θ_i - θ_j)`` and
    ``v_ij = var θ_i + var θ_j``: the expected drop in the entropy (nats) of the Gaussian
    (Laplace) posterior of ``θ_i - θ_j``, which is also the rise of log det of the Fisher
    information (the D-optimal sequential criterion). Large for close scores (``p`` near ½)
    that are still uncertain. Covariances between scores are neglected.

    Returns
    -------
    (m,) float array
        In nats, ≥ 0.

    References
    ----------
    Glickman, M. E. & Jensen, S. T. (2005). Adaptive paired comparison design. Journal of
    Statistical Planning and Inference 127, 279–293. Mikhailiuk, A., Wilmot, C.,
    Perez-Ortiz, M., Yue, D. & Mantiuk, R. K. (2021). Active sampling for pairwise
    comparisons via approximate message passing and information gain maximization. ICPR 2020.
    """
    pairs = np.asarray(pairs, dtype=np.int64)
    p = expit(scores[pairs[:, 0]] - scores[pairs[:, 1]])
    spread = variances[pairs[:, 0]] + variances[pairs[:, 1]]
    return 0.5 * np.log1p(p * (1.0 - p) * spread)


def adaptive_pairs(
    scores: np.ndarray,
    standard_errors: np.ndarray,
    n_pairs: int,
    *,
    judged: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    window: int = 20,
    seed: int = 0,
) -> np.ndarray:
    """The next ``n_pairs`` pairs, chosen for the largest expected information gain.

    Candidates are each item with its ``window`` nearest neighbours in score order (the
    gain falls off with the score difference; the window doubles while the rules leave too
    few, so a long study reaches farther pairs); they are ranked by
    :func:`information_gain` and taken greedily so that no item appears twice in the batch,
    no pair of ``judged`` (for example the pairs this rater has judged) comes again and no
    two members of a near-duplicate group meet. Refit and call again for the next batch.
    Left and right are drawn at random.

    Parameters
    ----------
    scores, standard_errors : (n,) float arrays
        The current fit (``ScoreFit.scores`` and ``.standard_errors``).
    n_pairs : int
        Batch size, at most ``n // 2``.
    judged : (m, 2) int array, optional
        Pairs not to give again (either order).
    groups : (n,) int array, optional
        Near-duplicate group of each item.
    window : int
        Neighbours in score order considered for each item.
    seed : int
        Seed for breaking ties and for left/right.

    Returns
    -------
    (k, 2) int64 array
        ``k ≤ n_pairs`` pairs (fewer only when the rules leave no more).
    """
    scores = np.asarray(scores, dtype=np.float64)
    variances = np.asarray(standard_errors, dtype=np.float64) ** 2
    n = len(scores)
    if variances.shape != (n,):
        raise ScienceError("scores and standard_errors must have the same length")
    if not 1 <= n_pairs <= n // 2:
        raise ScienceError(f"n_pairs must be between 1 and {n // 2} (each item once per batch)")
    if window < 1:
        raise ScienceError(f"window must be at least 1, not {window}")
    labels = check_groups(groups, n)
    rng = np.random.default_rng(seed)
    done = None
    if judged is not None and len(judged):
        judged = np.asarray(judged, dtype=np.int64)
        done = np.minimum(judged[:, 0], judged[:, 1]) * n + np.maximum(judged[:, 0], judged[:, 1])
    # Random tie-breaks in the order, so equal scores (a fresh study) give random partners.
    order = np.lexsort((rng.random(n), scores))
    while True:
        candidates = _neighbours(order, min(window, n - 1))
        if labels is not None:
            candidates = candidates[labels[candidates[:, 0]] != labels[candidates[:, 1]]]
        if done is not None:
            keys = candidates.min(axis=1) * n + candidates.max(axis=1)
            candidates = candidates[~np.isin(keys, done)]
        chosen = _greedy_matching(candidates, information_gain(scores, variances, candidates), n_pairs, rng)
        # Late in a study the near neighbours may all be judged: look further out.
        if len(chosen) == n_pairs or window >= n - 1:
            break
        window *= 2

    def allowed(a: int, b: int) -> bool:
        if labels is not None and labels[a] == labels[b]:
            return False
        return done is None or not np.isin(min(a, b) * n + max(a, b), done)

    return _complete(chosen, n, n_pairs, allowed)


def _complete(chosen: np.ndarray, n: int, n_pairs: int, allowed: Callable[[int, int], bool]) -> np.ndarray:
    """Pair up items a greedy batch left over, directly or by re-pairing a chosen pair.

    A greedy matching can strand two items that may not meet (already judged, one group);
    ``(u, v)`` and a chosen ``(a, b)`` become ``(u, a), (v, b)`` when those may meet. Runs
    only when the batch is short and at most 50 items are left over.
    """
    pairs: list[tuple[int, int]] = [(a, b) for a, b in chosen.tolist()]
    left = sorted(set(range(n)) - set(chosen.ravel().tolist()))
    if len(pairs) >= n_pairs or len(left) > 50:
        return chosen
    while len(pairs) < n_pairs and len(left) >= 2:
        step = _repair_step(pairs, left, allowed)
        if step is None:
            break
        new, replaced = step
        if replaced is not None:
            pairs.pop(replaced)
        pairs.extend(new)
        placed = {item for pair in new for item in pair}
        left = [item for item in left if item not in placed]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def _repair_step(
    pairs: list[tuple[int, int]], left: list[int], allowed: Callable[[int, int], bool]
) -> tuple[list[tuple[int, int]], int | None] | None:
    """New pairs for two left-over items, and the index of the chosen pair they replace."""
    for u, v in itertools.combinations(left, 2):
        if allowed(u, v):
            return [(u, v)], None
        for k, (a, b) in enumerate(pairs):
            if allowed(u, a) and allowed(v, b):
                return [(u, a), (v, b)], k
            if allowed(u, b) and allowed(v, a):
                return [(u, b), (v, a)], k
    return None


def _neighbours(order: np.ndarray, window: int) -> np.ndarray:
    """Pairs of items at most ``window`` places apart in ``order``."""
    n = len(order)
    offsets = np.arange(1, window + 1)
    first = np.repeat(np.arange(n), len(offsets))
    second = first + np.tile(offsets, n)
    keep = second < n
    return np.stack([order[first[keep]], order[second[keep]]], axis=1)


def _greedy_matching(
    candidates: np.ndarray, gain: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> np.ndarray:
    """Highest-gain candidates first, each item at most once; random left/right."""
    ranked = candidates[np.lexsort((rng.random(len(gain)), -gain))]
    used: set[int] = set()
    chosen: list[tuple[int, int]] = []
    for a, b in ranked.tolist():
        if a in used or b in used:
            continue
        used.update((a, b))
        chosen.append((a, b) if rng.random() < 0.5 else (b, a))
        if len(chosen) == n_pairs:
            break
    return np.array(chosen, dtype=np.int64).reshape(-1, 2)
