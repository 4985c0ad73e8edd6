"""Best–worst scaling: block designs, counting scores by hand, the logit model against references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import logsumexp
from scipy.stats import spearmanr

from itagger_lib.designs import best_worst_counts, best_worst_design, best_worst_mnl, bradley_terry
from itagger_lib.errors import ScienceError
from tests.designs.simulate import best_worst_choices


def co_occurrence(blocks: np.ndarray, n_items: int) -> np.ndarray:
    together = np.zeros((n_items, n_items), dtype=np.int64)
    for block in blocks.tolist():
        for a, b in itertools.combinations(block, 2):
            together[a, b] += 1
            together[b, a] += 1
    return together[np.triu_indices(n_items, 1)]


@pytest.mark.parametrize(
    ("n_items", "n_trials", "k", "n_raters"),
    [(5, 5, 4, 2), (7, 7, 4, 3), (12, 9, 5, 2), (30, 20, 4, 5), (101, 60, 5, 3), (400, 100, 4, 2)],
)
def test_design_shows_every_item_equally_often_within_one(
    n_items: int, n_trials: int, k: int, n_raters: int
) -> None:
    designs = [best_worst_design(n_items, n_trials, k, rater=r, seed=n_items) for r in range(n_raters)]
    for blocks in designs:
        assert blocks.shape == (n_trials, k)
        assert all(len(set(row)) == k for row in blocks.tolist())
        counts = np.bincount(blocks.ravel(), minlength=n_items)
        assert counts.max() - counts.min() <= 1
    overall = np.bincount(np.concatenate(designs).ravel(), minlength=n_items)
    assert overall.max() - overall.min() <= 1


@pytest.mark.parametrize(("v", "b", "k", "lam"), [(7, 7, 4, 2), (9, 18, 4, 3), (10, 15, 4, 2)])
def test_small_designs_reach_balanced_incomplete_blocks(v: int, b: int, k: int, lam: int) -> None:
    # These BIBDs exist; annealing finds them for these seeds (and gets within ±1 otherwise).
    together = co_occurrence(best_worst_design(v, b, k, seed=0), v)
    assert together.min() == together.max() == lam


def test_larger_designs_spread_pairs_evenly() -> None:
    together = co_occurrence(best_worst_design(40, 60, 5, seed=1), 40)  # mean 0.77 per pair
    assert together.max() <= 2 and np.mean(together == 2) < 0.05
    sparse = best_worst_design(1000, 500, 4, seed=2)
    assert together.max() <= 2
    assert co_occurrence(sparse, 1000).max() == 1  # no pair twice


def test_prefix_balance_keeps_every_prefix_within_one() -> None:
    blocks = best_worst_design(13, 26, 4, prefix_balance=True, seed=3)
    counts = np.zeros(13, dtype=np.int64)
    for row in blocks.tolist():
        counts[row] += 1
        assert counts.max() - counts.min() <= 1


def test_near_duplicates_are_kept_out_of_one_trial() -> None:
    groups = np.repeat(np.arange(15), [3, 3, 2, 2, 2] + [1] * 10)
    blocks = best_worst_design(len(groups), 30, 4, groups=groups, seed=4)
    assert all(len(set(groups[row].tolist())) == 4 for row in blocks)


def test_counting_scores_by_hand() -> None:
    blocks = np.array([[0, 1, 2, 3], [0, 1, 2, 4], [1, 2, 3, 4]])
    best = np.array([0, 0, 2])
    worst = np.array([3, 4, 4])
    counts = best_worst_counts(blocks, best, worst, n_items=6)
    assert counts.best.tolist() == [2, 0, 1, 0, 0, 0]
    assert counts.worst.tolist() == [0, 0, 0, 1, 2, 0]
    assert counts.shown.tolist() == [2, 3, 3, 2, 2, 0]
    # (B - W) / shown: 0 → 2/2, 1 → 0/3, 2 → 1/3, 3 → -1/2, 4 → -2/2, 5 never shown
    assert counts.scores[:5] == pytest.approx([1.0, 0.0, 1 / 3, -0.5, -1.0])
    assert np.isnan(counts.scores[5])


def test_trials_of_two_are_bradley_terry_with_the_closed_form() -> None:
    # 0 is best 3 times of 4 against 1: θ0 - θ1 = log 3 (almost no prior)
    blocks = np.array([[0, 1], [1, 0], [0, 1], [0, 1]])
    best, worst = np.array([0, 0, 1, 0]), np.array([1, 1, 0, 1])
    fit = best_worst_mnl(blocks, best, worst, prior_sd=1e4)
    assert fit.scores[0] - fit.scores[1] == pytest.approx(np.log(3), abs=1e-6)
    rng = np.random.default_rng(1)
    pairs = rng.choice(8, size=(200, 2), replace=True)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    first_best = rng.random(len(pairs)) < 0.6
    best = np.where(first_best, pairs[:, 0], pairs[:, 1])
    worst = np.where(first_best, pairs[:, 1], pairs[:, 0])
    as_logit = best_worst_mnl(pairs, best, worst, n_items=8)
    as_pairs = bradley_terry(np.stack([best, worst], axis=1), n_items=8)
    assert np.abs(as_logit.scores - as_pairs.scores).max() < 1e-9
    assert np.abs(as_logit.standard_errors - as_pairs.standard_errors).max() < 1e-9


def sequential_loglik(theta: np.ndarray, blocks: np.ndarray, best: np.ndarray, worst: np.ndarray) -> float:
    """Log-likelihood of best-then-worst choices, written directly from the probabilities:
    ``log P(b | S) = θ_b - log Σ_S exp θ``, ``log P(w | S∖b) = -θ_w - log Σ_{S∖b} exp(-θ)``."""
    utilities = theta[blocks]
    rest = blocks != best[:, None]
    best_part = theta[best] - logsumexp(utilities, axis=1)
    worst_part = -theta[worst] - logsumexp(np.where(rest, -utilities, -np.inf), axis=1)
    return float(best_part.sum() + worst_part.sum())


def test_logit_scores_maximise_the_sequential_likelihood() -> None:
    rng = np.random.default_rng(2)
    theta = rng.normal(0, 1, 9)
    blocks = best_worst_design(9, 18, 4, seed=5)
    best, worst = best_worst_choices(theta, blocks, rng)
    prior_sd = 2.0
    fit = best_worst_mnl(blocks, best, worst, prior_sd=prior_sd)

    def negative_posterior(x: np.ndarray) -> float:
        return -sequential_loglik(x, blocks, best, worst) + x @ x / (2 * prior_sd**2)

    reference = minimize(negative_posterior, np.zeros(9), method="BFGS", options={"gtol": 1e-10}).x
    assert np.abs(fit.scores - (reference - reference.mean())).max() < 1e-5
    # and the standard errors are those of the observed information at the optimum
    step = 1e-4
    hessian = np.array(
        [
            [
                (
                    negative_posterior(reference + step * (np.eye(9)[i] + np.eye(9)[j]))
                    - negative_posterior(reference + step * (np.eye(9)[i] - np.eye(9)[j]))
                    - negative_posterior(reference - step * (np.eye(9)[i] - np.eye(9)[j]))
                    + negative_posterior(reference - step * (np.eye(9)[i] + np.eye(9)[j]))
                )
                / (4 * step**2)
                for j in range(9)
            ]
            for i in range(9)
        ]
    )
    centre = np.eye(9) - 1 / 9
    covariance = centre @ np.linalg.inv(hessian) @ centre
    assert fit.standard_errors == pytest.approx(np.sqrt(np.diag(covariance)), rel=1e-4)


def test_logit_scores_recover_strengths_and_their_intervals_cover() -> None:
    rng = np.random.default_rng(3)
    hits, correlations, agreement = [], [], []
    for _ in range(40):
        theta = rng.normal(0, 1, 30)
        theta -= theta.mean()
        blocks = np.argsort(rng.random((180, 30)), axis=1)[:, :4]  # random tuples, 24 per item
        best, worst = best_worst_choices(theta, blocks, rng)
        fit = best_worst_mnl(blocks, best, worst)
        low, high = fit.intervals(0.95)
        hits.append(np.mean((low <= theta) & (theta <= high)))
        correlations.append(spearmanr(fit.scores, theta)[0])
        agreement.append(spearmanr(fit.scores, best_worst_counts(blocks, best, worst).scores)[0])
    assert np.mean(hits) == pytest.approx(0.95, abs=0.025)  # 1200 intervals
    assert np.mean(correlations) > 0.9
    assert np.mean(agreement) > 0.97  # counts rank almost as the model does


@pytest.mark.parametrize(
    ("blocks", "best", "worst", "message"),
    [
        ([[0, 1, 2]], [0], [0], "best and worst"),
        ([[0, 1, 2]], [3], [0], "best item 3"),
        ([[0, 1, 1]], [0], [1], "twice"),
        ([[0, 1, 2]], [0, 1], [2], "one item per trial"),
        ([0, 1, 2], [0], [2], "shape"),
    ],
)
def test_bad_trials_are_refused(blocks: list, best: list, worst: list, message: str) -> None:
    with pytest.raises(ScienceError, match=message):
        best_worst_counts(np.array(blocks), np.array(best), np.array(worst))
    with pytest.raises(ScienceError):
        best_worst_design(10, 3, 13)
