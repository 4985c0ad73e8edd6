"""Choosing which images to send: all, N at random, N stratified by a bin, only unrated.

Pure functions over image ids; the seed used is returned so that it can be recorded.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence

from itagger_lib.errors import ArgumentError


def new_seed() -> int:
    return random.SystemRandom().randrange(2**31)


def random_sample(image_ids: Sequence[int], n: int, seed: int) -> list[int]:
    """``n`` ids drawn without replacement (all of them if ``n`` ≥ their number), sorted."""
    if n < 0:
        raise ArgumentError(f"sample size must be >= 0, got {n}")
    ids = sorted(image_ids)
    if n >= len(ids):
        return ids
    return sorted(random.Random(seed).sample(ids, n))


def allocate(sizes: Mapping[Hashable, int], n: int) -> dict[Hashable, int]:
    """Proportional allocation of ``n`` draws over strata (largest remainder, Hamilton).

    Each stratum gets ``floor(n·size/total)`` and the leftover draws go to the largest
    fractional parts; no stratum gets more than its size.
    """
    total = sum(sizes.values())
    if total == 0 or n <= 0:
        return {k: 0 for k in sizes}
    n = min(n, total)
    exact = {k: n * size / total for k, size in sizes.items()}
    counts = {k: min(sizes[k], math.floor(v)) for k, v in exact.items()}
    order = sorted(sizes, key=lambda k: (exact[k] - math.floor(exact[k]), sizes[k]), reverse=True)
    while sum(counts.values()) < n:
        for key in order:
            if sum(counts.values()) >= n:
                break
            if counts[key] < sizes[key]:
                counts[key] += 1
    return counts


def stratified_sample(
    image_ids: Sequence[int], strata: Mapping[int, Hashable], n: int, seed: int
) -> list[int]:
    """``n`` ids spread over the strata in proportion to their sizes (images without a stratum
    form their own stratum ``None``), random within each stratum, sorted."""
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for image_id in sorted(image_ids):
        groups[strata.get(image_id)].append(image_id)
    counts = allocate({k: len(v) for k, v in groups.items()}, n)
    rng = random.Random(seed)
    chosen: list[int] = []
    for key in sorted(groups, key=repr):
        chosen.extend(rng.sample(groups[key], counts[key]))
    return sorted(chosen)
