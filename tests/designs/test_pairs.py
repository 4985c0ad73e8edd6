"""Pair schedules: balance within ±1, no repeats per rater, near-duplicates apart; adaptive choice."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.stats import spearmanr

from itagger_lib.designs import (
    adaptive_pairs,
    bradley_terry,
    information_gain,
    pair_schedule,
    pairs_per_rater,
    rater_pairs,
)
from itagger_lib.errors import ScienceError
from tests.designs.simulate import pairwise_outcomes


def unordered(pairs: np.ndarray) -> np.ndarray:
    return np.sort(pairs, axis=1)


def assert_balanced_prefixes(pairs: np.ndarray, n_items: int) -> None:
    counts = np.zeros(n_items, dtype=np.int64)
    for left, right in pairs.tolist():
        counts[left] += 1
        counts[right] += 1
        assert counts.max() - counts.min() <= 1


# Sizes from tiny to a few hundred, sparse to complete designs, one to several raters.
SIZES = [(2, 1, 3), (3, 3, 2), (4, 6, 2), (5, 7, 3), (6, 15, 2), (7, 21, 1), (8, 27, 2), (11, 55, 1)]
RNG = np.random.default_rng(20261205)
SIZES += [
    (int(n), int(RNG.integers(1, n * (n - 1) // 2 + 1)), int(RNG.integers(1, 6)))
    for n in RNG.integers(3, 60, 12)
]
SIZES += [(300, 1000, 4), (1000, 333, 7)]


@pytest.mark.parametrize(("n_items", "n_pairs", "n_raters"), SIZES)
def test_schedule_is_balanced_and_never_repeats_a_pair_for_a_rater(
    n_items: int, n_pairs: int, n_raters: int
) -> None:
    schedules = pair_schedule(n_items, n_pairs, n_raters, seed=n_items + n_pairs)
    assert schedules.shape == (n_raters, n_pairs, 2)
    for pairs in schedules:
        assert np.all(pairs[:, 0] != pairs[:, 1])
        assert len(np.unique(unordered(pairs), axis=0)) == n_pairs
        assert_balanced_prefixes(pairs, n_items)
    overall = np.bincount(schedules.ravel(), minlength=n_items)
    assert overall.max() - overall.min() <= 1
    assert overall.sum() == 2 * n_pairs * n_raters


def test_a_raters_schedule_depends_only_on_the_study_and_the_rater() -> None:
    alone = rater_pairs(50, 40, rater=3, seed=7)
    assert np.array_equal(alone, pair_schedule(50, 40, 5, seed=7)[3])
    assert not np.array_equal(alone, rater_pairs(50, 40, rater=3, seed=8))
    assert not np.array_equal(alone, rater_pairs(50, 40, rater=2, seed=7))


def test_left_and_right_are_mixed() -> None:
    pairs = rater_pairs(40, 400, seed=1)
    left_share = np.bincount(pairs[:, 0], minlength=40) / np.bincount(pairs.ravel(), minlength=40)
    assert 0.3 < left_share.mean() < 0.7 and left_share.min() < 0.5 < left_share.max()


def test_members_of_a_near_duplicate_group_are_never_paired() -> None:
    groups = np.repeat(np.arange(12), [5, 4, 3, 3, 2, 2, 2, 1, 1, 1, 1, 1])
    for rater in range(4):
        pairs = rater_pairs(len(groups), 60, rater=rater, groups=groups, seed=3)
        assert np.all(groups[pairs[:, 0]] != groups[pairs[:, 1]])
        counts = np.bincount(pairs.ravel(), minlength=len(groups))
        assert counts.max() - counts.min() <= 1


def test_avoid_rater_shows_one_member_of_each_group_and_rotates_members() -> None:
    groups = np.repeat(np.arange(10), [3, 3, 2, 2, 1, 1, 1, 1, 1, 1])
    shown_members = set()
    group_totals = np.zeros(10, dtype=np.int64)
    for rater in range(6):
        pairs = rater_pairs(len(groups), 20, rater=rater, groups=groups, avoid="rater", seed=5)
        items = np.unique(pairs)
        assert len(np.unique(groups[items])) == len(items)  # one member per group
        per_group = np.bincount(groups[pairs.ravel()], minlength=10)
        assert per_group.max() - per_group.min() <= 1
        group_totals += per_group
        shown_members |= set(items.tolist())
    assert shown_members == set(range(len(groups)))  # members take turns
    assert group_totals.max() - group_totals.min() <= 1


def test_impossible_schedules_are_refused_with_a_reason() -> None:
    with pytest.raises(ScienceError, match="fewer"):
        rater_pairs(6, 16)
    with pytest.raises(ScienceError, match="fewer"):
        rater_pairs(6, 13, groups=np.array([0, 0, 0, 1, 2, 3]))
    # 12 allowed pairs, but members of the trio have 3 partners and the others 5: no
    # schedule of all 12 is balanced within ±1.
    with pytest.raises(ScienceError, match="could not schedule"):
        rater_pairs(6, 12, groups=np.array([0, 0, 0, 1, 2, 3]))
    with pytest.raises(ScienceError, match="groups"):
        rater_pairs(6, 2, groups=np.array([0, 1]))
    with pytest.raises(ScienceError):
        rater_pairs(1, 1)


def test_pairs_per_rater() -> None:
    assert pairs_per_rater(100, 10, 4) == 125  # 100 images × 10 / 2 per pair / 4 raters
    assert pairs_per_rater(101, 3, 2) == 76
    with pytest.raises(ScienceError):
        pairs_per_rater(100, 0, 1)


def test_information_gain_is_the_gaussian_entropy_drop() -> None:
    scores = np.array([0.0, np.log(3.0), 0.0])
    variances = np.array([0.5, 0.25, 2.0])
    gain = information_gain(scores, variances, np.array([[1, 0], [0, 2]]))
    # p = 3/4 for the first pair: p(1 - p) = 3/16, variance of the difference 0.75
    assert gain[0] == pytest.approx(0.5 * np.log(1 + 3 / 16 * 0.75))
    assert gain[1] == pytest.approx(0.5 * np.log(1 + 0.25 * 2.5))


def test_adaptive_pairs_close_uncertain_items_once_each() -> None:
    scores = np.array([0.0, 0.1, 3.0, 3.1, 6.0, 6.05])
    errors = np.array([1.0, 1.0, 1.0, 1.0, 0.05, 0.05])
    chosen = adaptive_pairs(scores, errors, 2)
    assert {tuple(sorted(p)) for p in chosen.tolist()} == {(0, 1), (2, 3)}
    chosen = adaptive_pairs(scores, errors, 3, judged=np.array([[1, 0]]))
    assert (0, 1) not in {tuple(sorted(p)) for p in chosen.tolist()}
    assert len(np.unique(chosen)) == chosen.size
    groups = np.array([0, 0, 1, 1, 2, 2])
    chosen = adaptive_pairs(scores, errors, 3, groups=groups)
    assert np.all(groups[chosen[:, 0]] != groups[chosen[:, 1]])
    with pytest.raises(ScienceError):
        adaptive_pairs(scores, errors, 4)


def test_adaptive_choice_beats_a_balanced_schedule_when_strengths_spread_widely() -> None:
    # Strengths 3 logits apart on average: many random pairs are foregone conclusions.
    rng = np.random.default_rng(11)
    n, budget, batch = 80, 1600, 40
    error = {"balanced": [], "adaptive": []}
    rank = {"balanced": [], "adaptive": []}
    for _ in range(3):
        theta = rng.normal(0, 3.0, n)
        theta -= theta.mean()
        balanced = rater_pairs(n, budget, seed=int(rng.integers(1 << 30)))
        fits = {"balanced": bradley_terry(balanced, pairwise_outcomes(theta, balanced, rng), n_items=n)}
        pairs = rater_pairs(n, 4 * batch, seed=int(rng.integers(1 << 30)))  # a balanced start
        outcomes = pairwise_outcomes(theta, pairs, rng)
        while len(pairs) < budget:
            fit = bradley_terry(pairs, outcomes, n_items=n)
            more = adaptive_pairs(fit.scores, fit.standard_errors, batch, judged=pairs, seed=len(pairs))
            assert len(more) == batch and len(np.unique(more)) == 2 * batch
            pairs = np.concatenate([pairs, more])
            outcomes = np.concatenate([outcomes, pairwise_outcomes(theta, more, rng)])
        assert len(np.unique(unordered(pairs), axis=0)) == budget  # never the same pair twice
        fits["adaptive"] = bradley_terry(pairs, outcomes, n_items=n)
        for name, fit in fits.items():
            error[name].append(np.sqrt(np.mean((fit.scores - theta) ** 2)))
            rank[name].append(spearmanr(fit.scores, theta)[0])
    assert np.mean(error["adaptive"]) < 0.9 * np.mean(error["balanced"])
    assert np.mean(rank["adaptive"]) > np.mean(rank["balanced"])


def test_adaptive_choice_reaches_beyond_judged_neighbours() -> None:
    scores = np.linspace(-2, 2, 10)
    errors = np.full(10, 0.5)
    judged = np.array([(i, j) for i in range(10) for j in range(i + 1, min(i + 3, 10))])
    chosen = adaptive_pairs(scores, errors, 5, judged=judged, window=2)
    assert len(chosen) == 5
    assert not ({tuple(sorted(p)) for p in chosen.tolist()} & {tuple(p) for p in judged.tolist()})


@pytest.mark.parametrize("n", [4, 7, 10, 60, 61])
def test_complete_designs_give_every_pair_once(n: int) -> None:
    pairs = rater_pairs(n, n * (n - 1) // 2, seed=n)
    assert {tuple(sorted(p)) for p in pairs.tolist()} == set(itertools.combinations(range(n), 2))
    if n % 2 == 0 or n <= 30:
        assert_balanced_prefixes(pairs, n)
    else:  # a round-robin of an odd number: one item sits out each round of (n - 1)/2 pairs
        for end in range((n - 1) // 2, len(pairs) + 1, (n - 1) // 2):
            counts = np.bincount(pairs[:end].ravel(), minlength=n)
            assert counts.max() - counts.min() <= 1
