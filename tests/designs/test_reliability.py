"""Split-half reliability and circular triads: hand cases, brute force, simulated extremes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from itagger_lib.designs import (
    best_worst_split_half,
    bradley_terry,
    circular_triads,
    pair_schedule,
    pairwise_split_half,
    spearman_brown,
    split_half,
)
from itagger_lib.errors import ScienceError
from tests.designs.simulate import best_worst_choices, pairwise_outcomes, random_pairs


def test_spearman_brown_doubles_the_length() -> None:
    assert spearman_brown(0.5) == pytest.approx(2 / 3)
    assert spearman_brown(0.0) == 0.0 and spearman_brown(1.0) == pytest.approx(1.0)
    assert spearman_brown(0.5, factor=3) == pytest.approx(0.75)


def test_split_half_correlates_two_random_halves_and_corrects() -> None:
    # Item scores are the mean of their judgements: ten noisy judgements per item.
    rng = np.random.default_rng(0)
    item = np.repeat(np.arange(30), 10)
    values = item / 10 + rng.normal(0, 1, item.size)
    seen: list[np.ndarray] = []

    def score(mask: np.ndarray) -> np.ndarray:
        seen.append(mask.copy())
        counts = np.bincount(item[mask], minlength=30)
        totals = np.bincount(item[mask], values[mask], 30)
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)

    result = split_half(item.size, score, n_splits=8, seed=1)
    halves = list(zip(seen[::2], seen[1::2], strict=True))
    assert all(a.sum() == item.size // 2 and np.array_equal(a, ~b) for a, b in halves)
    assert len({a.tobytes() for a, _ in halves}) == 8  # a new random split each time
    assert result.corrected == pytest.approx(spearman_brown(result.correlations))
    assert result.reliability == pytest.approx(result.corrected.mean())
    # classical test theory: true variance 0.0775 (= var(item / 10)), error 1/10 per item mean
    true_variance = np.var(np.arange(30) / 10)
    assert result.reliability == pytest.approx(true_variance / (true_variance + 0.1), abs=0.12)


def test_clusters_keep_a_raters_judgements_in_one_half() -> None:
    raters = np.repeat(np.arange(6), 5)
    halves: list[np.ndarray] = []

    def score(mask: np.ndarray) -> np.ndarray:
        halves.append(mask)
        return np.arange(5, dtype=float) + mask[::6].sum()  # any non-constant scores

    split_half(30, score, clusters=raters, n_splits=3)
    for mask in halves:
        per_rater = np.bincount(raters, mask.astype(float)) / 5
        assert set(per_rater.tolist()) <= {0.0, 1.0}


def test_pairwise_reliability_agrees_with_the_standard_errors_and_vanishes_for_coin_flips() -> None:
    rng = np.random.default_rng(1)
    theta = rng.normal(0, 1.5, 60)
    pairs = pair_schedule(60, 600, 2, seed=2).reshape(-1, 2)  # 40 judgements per image
    outcomes = pairwise_outcomes(theta, pairs, rng)
    consistent = pairwise_split_half(pairs, outcomes, n_splits=10)
    fit = bradley_terry(pairs, outcomes)
    # the same reliability from the fit itself, 1 - mean(se²) / var(scores), and from the truth
    marginal = 1 - np.mean(fit.standard_errors**2) / np.var(fit.scores)
    assert consistent.reliability == pytest.approx(marginal, abs=0.04)
    assert consistent.reliability == pytest.approx(np.corrcoef(fit.scores, theta)[0, 1] ** 2, abs=0.05)
    many = pair_schedule(300, 1500, 2, seed=3).reshape(-1, 2)
    coin_flips = pairwise_split_half(many, (rng.random(len(many)) < 0.5).astype(float), n_splits=10)
    assert abs(coin_flips.reliability) < 0.2


def test_best_worst_reliability_with_counts_and_logit_scores() -> None:
    rng = np.random.default_rng(2)
    theta = rng.normal(0, 1, 40)
    blocks = np.argsort(rng.random((400, 40)), axis=1)[:, :4]
    best, worst = best_worst_choices(theta, blocks, rng)
    counts = best_worst_split_half(blocks, best, worst, n_splits=10)
    logit = best_worst_split_half(blocks, best, worst, scoring="mnl", n_splits=10, method="spearman")
    assert counts.reliability > 0.8 and logit.reliability > 0.8
    random_best, random_worst = best_worst_choices(np.zeros(40), blocks, rng)
    assert abs(best_worst_split_half(blocks, random_best, random_worst, n_splits=10).reliability) < 0.3


def test_too_little_data_for_split_half_is_refused() -> None:
    with pytest.raises(ScienceError, match="both halves"):
        pairwise_split_half(np.array([[0, 1], [2, 3]]), n_splits=1)
    with pytest.raises(ScienceError, match="two"):
        split_half(1, lambda mask: np.zeros(3))


def brute_force_triads(pairs: np.ndarray, outcomes: np.ndarray, n: int) -> tuple[int, int]:
    margin = np.zeros((n, n))
    for (a, b), y in zip(pairs.tolist(), outcomes.tolist(), strict=True):
        margin[a, b] += y - 0.5
        margin[b, a] -= y - 0.5
    judged = circular = 0
    for i, j, k in itertools.combinations(range(n), 3):
        edges = [margin[i, j], margin[j, k], margin[k, i]]
        if any(m == 0 for m in edges):
            continue
        judged += 1
        circular += all(m > 0 for m in edges) or all(m < 0 for m in edges)
    return circular, judged


def test_a_cycle_and_a_chain() -> None:
    cycle = circular_triads(np.array([[0, 1], [1, 2], [2, 0]]))
    assert (cycle.circular, cycle.judged, cycle.share) == (1, 1, 1.0)
    chain = circular_triads(np.array([[0, 1], [1, 2], [0, 2]]))
    assert (chain.circular, chain.judged, chain.share) == (0, 1, 0.0)
    tied = circular_triads(np.array([[0, 1], [1, 2], [2, 0], [0, 2]]))  # 2-0 is a draw
    assert tied.judged == 0 and np.isnan(tied.share)


def test_triads_match_brute_force_and_random_choices_give_a_quarter() -> None:
    rng = np.random.default_rng(3)
    pairs = random_pairs(15, 300, rng)
    outcomes = rng.choice([0.0, 0.5, 1.0], size=300, p=[0.45, 0.1, 0.45])
    result = circular_triads(pairs, outcomes)
    assert (result.circular, result.judged) == brute_force_triads(pairs, outcomes, 15)
    many = random_pairs(60, 20000, rng)
    assert circular_triads(many, (rng.random(20000) < 0.5).astype(float)).share == pytest.approx(
        0.25, abs=0.02
    )
    theta = np.arange(60.0)  # a strict order with huge gaps: no cycles
    assert circular_triads(many, pairwise_outcomes(theta * 10, many, rng)).circular == 0


def test_triads_within_raters_do_not_mix_raters() -> None:
    # Each rater is transitive; pooled, the majorities form a Condorcet cycle.
    pairs = np.array([[0, 1], [1, 2], [0, 2], [1, 2], [2, 0], [1, 0], [2, 0], [0, 1], [2, 1]])
    raters = np.repeat([0, 1, 2], 3)
    per_rater = circular_triads(pairs, raters=raters)
    assert (per_rater.circular, per_rater.judged) == (0, 3)
    pooled = circular_triads(pairs)
    assert (pooled.circular, pooled.judged) == (1, 1)
    for rater in range(3):
        own = raters == rater
        assert circular_triads(pairs[own]).judged == 1
