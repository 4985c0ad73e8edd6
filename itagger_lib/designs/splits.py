"""Train/test splits that keep every near-duplicate group on one side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from itagger_lib.errors import ScienceError

__all__ = ["group_split"]


def group_split(groups: np.ndarray, fractions: Sequence[float] = (0.8, 0.2), *, seed: int = 0) -> np.ndarray:
    """Assign items to sides (train, test, …) so that no group is split across sides.

    Groups are taken from the largest to the smallest (ties in random order) and each goes
    to the side furthest below its target ``fraction · n`` (largest-first greedy, as for
    multiprocessor scheduling, Graham 1969). A group only goes to a side still below its
    target, so no side ends more than one group above it; with two sides neither ends
    further from its target than the largest group, and when the smallest groups are
    single images (most images of most sets) the sides end within one image of their
    targets. Which group goes where is random through ``seed``.

    Parameters
    ----------
    groups : (n,) int array
        Group label of each item, e.g. ``near_duplicate_groups(hashes)``.
    fractions : sequence of float
        Target share of each side, positive, summing to 1; ``(0.8, 0.2)`` is train/test,
        ``(0.7, 0.15, 0.15)`` train/validation/test.
    seed : int
        Seed for the order of equal-sized groups.

    Returns
    -------
    (n,) int64 array
        Side of each item: 0 for the first fraction, 1 for the second, …

    References
    ----------
    Graham, R. L. (1969). Bounds on multiprocessing timing anomalies. SIAM Journal on
    Applied Mathematics 17(2), 416–429.
    """
    groups = np.asarray(groups)
    if groups.ndim != 1 or not np.issubdtype(groups.dtype, np.integer):
        raise ScienceError("groups must be a 1-D integer array of group labels")
    shares = np.asarray(fractions, dtype=np.float64)
    if shares.ndim != 1 or len(shares) < 2 or np.any(shares <= 0) or abs(shares.sum() - 1) > 1e-9:
        raise ScienceError(f"fractions must be two or more positive shares summing to 1, not {fractions}")
    labels = np.unique(groups, return_inverse=True)[1]
    sizes = np.bincount(labels)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(sizes)), -sizes))
    targets = shares * len(groups)
    filled = np.zeros(len(shares))
    side_of_group = np.empty(len(sizes), dtype=np.int64)
    for group in order.tolist():
        side = int(np.argmax(targets - filled))
        side_of_group[group] = side
        filled[side] += sizes[group]
    return side_of_group[labels]
