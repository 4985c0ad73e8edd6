"""Balanced schedules of blocks (pairs, or best–worst tuples) cut from a stream of rounds.

A rater's schedule is a stream of item numbers cut into blocks of ``k``: ``q`` rounds that
each hold every item once, then ``e`` extra items. Every item therefore appears ``q`` or
``q + 1`` times, and every prefix of whole rounds plus part of a round is balanced within
±1 as well. The extras of rater ``r`` are the items at positions ``r·e … r·e + e - 1`` of
one shared random cycle, so raters ``0 … R-1`` together also see every item within ±1.

A random stream breaks constraints now and then (an item twice in one block, two members
of a near-duplicate group together, a pair a rater has already judged); a local search
swaps positions inside one round, which keeps both balance properties, until no block
breaks a constraint, and then spreads co-occurrences evenly (it minimises ``Σ c(c-1)/2``
over the co-occurrence counts ``c`` of all pairs, a convex cost with a fixed total).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from itagger_lib.errors import ScienceError

__all__ = ["Avoid", "check_groups", "schedule"]

Avoid = Literal["block", "rater"]

_SAME_ITEM = 10**6
_SAME_GROUP = 10**4
# Mean co-occurrence from which evening out pairs pays for annealing; sparser designs only
# need no pair twice, which the greedy repair reaches.
_DENSE = 0.2


def check_groups(groups: np.ndarray | None, n_items: int) -> np.ndarray | None:
    """Validate near-duplicate group labels (one integer per item) or pass ``None`` on."""
    if groups is None:
        return None
    groups = np.asarray(groups)
    if groups.shape != (n_items,) or not np.issubdtype(groups.dtype, np.integer):
        raise ScienceError(f"groups must hold one integer label per item ({n_items}), not {groups.shape}")
    return np.unique(groups, return_inverse=True)[1].astype(np.int64)


def schedule(
    n_items: int,
    n_blocks: int,
    block_size: int,
    *,
    rater: int,
    seed: int,
    groups: np.ndarray | None,
    avoid: Avoid,
    max_together: int | None,
    within_rounds: bool = True,
    anneal_steps: int = 0,
    tries: int = 20,
) -> np.ndarray:
    """``(n_blocks, block_size)`` item numbers for one rater; see the module docstring.

    ``max_together`` caps how often two items may share a block in this schedule (1 for a
    pair schedule: no pair twice to one rater); ``None`` only spreads co-occurrences evenly.
    With ``groups``, ``avoid="block"`` keeps two members of a group out of one block and
    ``avoid="rater"`` shows the rater one member of each group (members rotate over raters).
    ``anneal_steps`` swaps of simulated annealing then even out co-occurrences of dense
    designs, inside rounds (``within_rounds``, keeps prefixes balanced) or across them
    (final counts stay exact; finds exact BIBDs such as (7, 4, 2) that rounds rule out).
    """
    if n_items < block_size:
        raise ScienceError(f"{n_items} items cannot fill blocks of {block_size}")
    if n_blocks < 0 or rater < 0:
        raise ScienceError("the number of blocks and the rater number must not be negative")
    groups = check_groups(groups, n_items)
    universe = np.arange(n_items)
    if groups is not None and avoid == "rater":
        universe = _representatives(groups, rater, seed)
        groups = None
    elif avoid not in ("block", "rater"):
        raise ScienceError(f'avoid must be "block" or "rater", not {avoid!r}')
    n = len(universe)
    if n < block_size:
        raise ScienceError(f"only {n} near-duplicate groups, too few for blocks of {block_size}")
    if max_together is not None:
        _check_capacity(n, n_blocks, block_size, max_together, groups)
    shared = np.random.default_rng([seed, 0]).permutation(n)
    rng = np.random.default_rng([seed, 1, rater])
    if block_size == 2 and max_together == 1 and groups is None and n_blocks == n * (n - 1) // 2 and n > 30:
        # Every pair once: a round-robin tournament, which random repair rarely completes.
        return universe[_round_robin(n, rng)]
    rounds, extra = divmod(n_blocks * block_size, n)
    for _ in range(tries):
        parts = [rng.permutation(n) for _ in range(rounds)]
        parts.append(rng.permutation(shared[(rater * extra + np.arange(extra)) % n]))
        stream = np.concatenate(parts).astype(np.int64)
        search = _Search(stream, block_size, n, groups, max_together, rng)
        if search.run(anneal_steps, within_rounds):
            return universe[search.stream].reshape(n_blocks, block_size)
    raise ScienceError(
        f"could not schedule {n_blocks} blocks of {block_size} over {n} items without repeats "
        "or near-duplicates together; ask for fewer blocks per rater"
    )


def _round_robin(n: int, rng: np.random.Generator) -> np.ndarray:
    """All ``n(n-1)/2`` pairs as ``n - 1`` (even ``n``) or ``n`` rounds of disjoint pairs.

    The circle method (Walecki's construction, in Lucas 1883): one item stays, the others
    rotate. Every round of an even ``n`` holds every item once, so every prefix is balanced
    within ±1; with an odd ``n`` a phantom item makes one item sit out each round, and the counts
    are balanced within ±1 at the end of every round (within a round, pairs of the items
    that have sat out come first). Items, rounds and pairs are shuffled.
    """
    size = n + n % 2
    rounds = []
    for r in range(size - 1):
        pairs = [(size - 1, r)] + [((r + i) % (size - 1), (r - i) % (size - 1)) for i in range(1, size // 2)]
        rounds.append([(a, b) for a, b in pairs if a < n and b < n])
    label = rng.permutation(n)
    counts = np.zeros(n, dtype=np.int64)
    ordered = []
    for index in rng.permutation(len(rounds)):
        pairs = [(int(label[a]), int(label[b])) for a, b in rounds[index]]
        rng.shuffle(pairs)
        pairs.sort(key=lambda pair: counts[pair[0]] + counts[pair[1]])
        for a, b in pairs:
            counts[a] += 1
            counts[b] += 1
        ordered.extend(pairs)
    return np.array(ordered, dtype=np.int64).reshape(-1, 2)


def _representatives(groups: np.ndarray, rater: int, seed: int) -> np.ndarray:
    """One member of each group for ``rater``: member ``(rater + offset_g) mod size_g``."""
    order = np.argsort(groups, kind="stable")
    sizes = np.bincount(groups)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    offsets = np.random.default_rng([seed, 2]).integers(0, sizes)
    return order[starts + (rater + offsets) % sizes]


def _check_capacity(
    n: int, n_blocks: int, block_size: int, max_together: int, groups: np.ndarray | None
) -> None:
    pairs = n * (n - 1) // 2
    if groups is not None:
        sizes = np.bincount(groups)
        pairs -= int((sizes * (sizes - 1) // 2).sum())
    needed = n_blocks * block_size * (block_size - 1) // 2
    if needed > max_together * pairs:
        raise ScienceError(
            f"{n_blocks} blocks of {block_size} need {needed} distinct pairs but only "
            f"{max_together * pairs} are allowed over {n} items; ask for fewer per rater"
        )


class _Search:
    """Local search over swaps of two positions of one round."""

    def __init__(
        self,
        stream: np.ndarray,
        k: int,
        n: int,
        groups: np.ndarray | None,
        max_together: int | None,
        rng: np.random.Generator,
    ) -> None:
        self.stream = stream
        self.k = k
        self.n = n
        self.groups = groups
        self.cap = max_together
        self.rng = rng
        blocks = stream.reshape(-1, k)
        left, right = np.triu_indices(k, 1)
        a, b = blocks[:, left].ravel(), blocks[:, right].ravel()
        distinct = a != b  # an item twice in a block is a broken block, not a pair
        keys, counts = np.unique(
            np.minimum(a, b)[distinct] * n + np.maximum(a, b)[distinct], return_counts=True
        )
        self.counts: dict[int, int] = dict(zip(keys.tolist(), counts.tolist(), strict=True))
        self.mean = len(a) / max(n * (n - 1) / 2, 1)
        self.target = max(1, math.ceil(self.mean))

    def cost(self, x: int, y: int, count: int) -> int:
        if x == y:
            return _SAME_ITEM * count
        base = count * (count - 1) // 2
        if self.groups is not None and self.groups[x] == self.groups[y]:
            return base + _SAME_GROUP * count
        return base

    def block_of(self, position: int) -> range:
        start = position - position % self.k
        return range(start, start + self.k)

    def swap_delta(self, p: int, q: int) -> tuple[int, dict[tuple[int, int], int]]:
        """Change of total cost if positions ``p`` and ``q`` (different blocks) swap items."""
        s = self.stream
        x, y = int(s[p]), int(s[q])
        change: dict[tuple[int, int], int] = {}
        for position, leaving, arriving in ((p, x, y), (q, y, x)):
            for other in self.block_of(position):
                if other == position:
                    continue
                z = int(s[other])
                for item, step in ((leaving, -1), (arriving, 1)):
                    pair = (min(item, z), max(item, z))
                    change[pair] = change.get(pair, 0) + step
        delta = 0
        for (u, v), step in change.items():
            if step:
                count = self.counts.get(u * self.n + v, 0) if u != v else 0
                if u == v:
                    delta += _SAME_ITEM * step
                else:
                    delta += self.cost(u, v, count + step) - self.cost(u, v, count)
        return delta, change

    def apply(self, p: int, q: int, change: dict[tuple[int, int], int]) -> None:
        self.stream[p], self.stream[q] = self.stream[q], self.stream[p]
        for (u, v), step in change.items():
            if u != v and step:
                key = u * self.n + v
                self.counts[key] = self.counts.get(key, 0) + step

    def bad_positions(self, test: str) -> list[int]:
        """Positions in pairs that break a constraint (``"broken"``) or co-occur too often."""
        blocks = self.stream.reshape(-1, self.k)
        left, right = np.triu_indices(self.k, 1)
        a, b = blocks[:, left], blocks[:, right]
        keys = np.minimum(a, b) * self.n + np.maximum(a, b)
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
        together = counts[inverse].reshape(keys.shape)
        if test == "broken":
            bad = a == b
            if self.groups is not None:
                bad |= self.groups[a] == self.groups[b]
            if self.cap is not None:
                bad |= together > self.cap
        else:
            bad = (a != b) & (together > self.target)
        block, pair = np.nonzero(bad)
        side = np.where(self.rng.random(len(block)) < 0.5, left[pair], right[pair])
        return (block * self.k + side).tolist()

    def improve(self, position: int, attempts: int) -> bool:
        """Try swaps of ``position`` with random positions of its round; keep a better one."""
        start, stop = self.round_of(position)
        if stop - start < 2:
            return False
        own = self.block_of(position)
        for _ in range(attempts):
            other = int(self.rng.integers(start, stop))
            if other in own:
                continue
            delta, change = self.swap_delta(position, other)
            if delta < 0 or (delta == 0 and self.rng.random() < 0.2):
                self.apply(position, other, change)
                if delta < 0:
                    return True
        return False

    def round_of(self, position: int) -> tuple[int, int]:
        start = position - position % self.n
        return start, min(start + self.n, len(self.stream))

    def anneal(self, steps: int, within_rounds: bool) -> None:
        """Simulated annealing over swaps (Kirkpatrick, Gelatt & Vecchi 1983); keeps the best.

        Hard constraints cost 10⁴ or more per pair, so at these temperatures (2 → 0.05) no
        swap that breaks one is ever accepted.
        """
        total = len(self.stream)
        cost = best = 0
        # Stop early at the least possible cost: every pair q or q + 1 times.
        excess = sum(c * (c - 1) // 2 for c in self.counts.values()) - self.least_cost()
        best_stream = self.stream.copy()
        for step in range(steps):
            if excess + best <= 0:
                break
            temperature = 2.0 * 0.025 ** (step / steps)
            p = int(self.rng.integers(0, total))
            start, stop = self.round_of(p) if within_rounds else (0, total)
            q = int(self.rng.integers(start, stop))
            if p // self.k == q // self.k:
                continue
            delta, change = self.swap_delta(p, q)
            if delta <= 0 or self.rng.random() < math.exp(-delta / temperature):
                self.apply(p, q, change)
                cost += delta
                if cost < best:
                    best = cost
                    best_stream = self.stream.copy()
        self.stream[:] = best_stream

    def least_cost(self) -> int:
        """``Σ c(c-1)/2`` when the pairs' co-occurrences differ by at most one."""
        pairs = self.n * (self.n - 1) // 2
        if self.groups is not None:
            sizes = np.bincount(self.groups)
            pairs -= int((sizes * (sizes - 1) // 2).sum())
        incidences = sum(self.counts.values())
        low, high_pairs = divmod(incidences, max(pairs, 1))
        return (pairs - high_pairs) * low * (low - 1) // 2 + high_pairs * (low + 1) * low // 2

    def run(self, anneal_steps: int, within_rounds: bool, passes: int = 60, attempts: int = 40) -> bool:
        """Repair broken blocks, then spread co-occurrences; ``False`` if a block stays broken."""
        fewest, stalled = len(self.stream) + 1, 0
        for _ in range(passes):
            bad = self.bad_positions("broken")
            if not bad:
                break
            # A design that cannot be balanced stops shrinking: give this try up early.
            fewest, stalled = (len(bad), 0) if len(bad) < fewest else (fewest, stalled + 1)
            if stalled >= 8:
                return False
            for position in bad:
                self.improve(position, attempts)
        if self.bad_positions("broken"):
            return False
        if self.cap is None and anneal_steps and self.mean >= _DENSE:
            self.anneal(anneal_steps, within_rounds)
        elif self.cap is None:
            for _ in range(passes // 4):
                crowded = self.bad_positions("crowded")
                if not crowded:
                    break
                for position in crowded:
                    self.improve(position, attempts)
        return not self.bad_positions("broken")
