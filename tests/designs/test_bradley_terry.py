"""Bradley–Terry: closed forms, a reference MM fit, choix, recovery and interval coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from itagger_lib.designs import bootstrap_scores, bradley_terry, pair_schedule, rater_pairs
from itagger_lib.errors import ScienceError
from tests.designs.simulate import pairwise_outcomes, random_pairs


def hunter_mm(pairs: np.ndarray, outcomes: np.ndarray, n_items: int, steps: int = 5000) -> np.ndarray:
    """Maximum-likelihood scores by Hunter's (2004) MM iteration, written from the paper.

    ``γ_i ← W_i / Σ_j n_ij / (γ_i + γ_j)`` with ``W_i`` the wins of ``i`` (a tie half a
    win) and ``n_ij`` the comparisons of ``i`` and ``j``; returns centred ``log γ``.
    """
    wins = np.zeros(n_items)
    np.add.at(wins, pairs[:, 0], outcomes)
    np.add.at(wins, pairs[:, 1], 1 - outcomes)
    gamma = np.ones(n_items)
    for _ in range(steps):
        rate = 1.0 / (gamma[pairs[:, 0]] + gamma[pairs[:, 1]])
        denominator = np.bincount(pairs[:, 0], rate, n_items) + np.bincount(pairs[:, 1], rate, n_items)
        gamma = wins / denominator
        gamma /= np.exp(np.log(gamma).mean())
    scores = np.log(gamma)
    return scores - scores.mean()


def test_two_items_have_the_closed_form_logit_and_standard_error() -> None:
    # a beats b three times out of four: θ_a - θ_b = log 3, var = 1 / (n p (1 - p)) = 4/3
    fit = bradley_terry(np.array([[0, 1], [0, 1], [1, 0], [0, 1]]), prior_sd=None)
    assert fit.scores == pytest.approx([np.log(3) / 2, -np.log(3) / 2])
    assert fit.standard_errors == pytest.approx([np.sqrt(4 / 3) / 2] * 2)
    assert fit.se_method == "exact"


def test_a_tie_counts_as_half_a_win() -> None:
    # one win of a and two ties: a has 2 of 3 "wins", so θ_a - θ_b = log 2
    fit = bradley_terry(np.array([[0, 1], [0, 1], [1, 0]]), np.array([1.0, 0.5, 0.5]), prior_sd=None)
    assert fit.scores[0] - fit.scores[1] == pytest.approx(np.log(2))
    only_ties = bradley_terry(np.array([[0, 1], [1, 0]]), np.array([0.5, 0.5]))
    assert only_ties.scores == pytest.approx([0, 0])


def test_maximum_likelihood_matches_hunters_mm_algorithm() -> None:
    rng = np.random.default_rng(4)
    theta = rng.normal(0, 1, 25)
    pairs = random_pairs(25, 1500, rng)
    outcomes = pairwise_outcomes(theta, pairs, rng)
    outcomes[::17] = 0.5
    fit = bradley_terry(pairs, outcomes, prior_sd=None)
    assert np.abs(fit.scores - hunter_mm(pairs, outcomes, 25)).max() < 1e-6


def test_agrees_with_choix() -> None:
    choix = pytest.importorskip("choix", reason="choix is not installed (pip install choix)")
    rng = np.random.default_rng(5)
    theta = rng.normal(0, 1, 30)
    pairs = random_pairs(30, 2000, rng)
    outcomes = pairwise_outcomes(theta, pairs, rng)
    winner_first = [(a, b) if y == 1 else (b, a) for (a, b), y in zip(pairs.tolist(), outcomes, strict=True)]
    ml = choix.ilsr_pairwise(30, winner_first, alpha=0.0, tol=1e-12)
    fit = bradley_terry(pairs, outcomes, prior_sd=None)
    assert np.abs((ml - ml.mean()) - fit.scores).max() < 1e-8
    # choix penalises alpha·|θ|², a Gaussian prior of variance 1/(2 alpha)
    alpha = 0.05
    map_choix = choix.opt_pairwise(30, winner_first, alpha=alpha, tol=1e-10)
    fit = bradley_terry(pairs, outcomes, prior_sd=np.sqrt(1 / (2 * alpha)))
    assert np.abs(map_choix - fit.scores).max() < 1e-6


def test_recovers_known_strengths_with_enough_judgements() -> None:
    rng = np.random.default_rng(6)
    theta = rng.normal(0, 1, 200)
    # Strengths spread by 1 logit, 100 judgements per image: a standard error near 0.2
    pairs = pair_schedule(200, 1250, 8, seed=1).reshape(-1, 2)
    fit = bradley_terry(pairs, pairwise_outcomes(theta, pairs, rng))
    assert spearmanr(fit.scores, theta)[0] >= 0.95
    assert fit.components == 1 and np.all(fit.judgements == 100)


def test_intervals_cover_the_truth_at_their_nominal_rate() -> None:
    rng = np.random.default_rng(7)
    hits = {0.8: [], 0.95: []}
    for _ in range(150):
        theta = rng.normal(0, 1, 20)
        theta -= theta.mean()
        pairs = random_pairs(20, 150, rng)  # 15 judgements per image on average
        fit = bradley_terry(pairs, pairwise_outcomes(theta, pairs, rng))
        for level in hits:
            low, high = fit.intervals(level)
            hits[level].append(np.mean((low <= theta) & (theta <= high)))
    # 3000 intervals per level: a binomial standard error of 0.4-0.7 points
    assert np.mean(hits[0.95]) == pytest.approx(0.95, abs=0.02)
    assert np.mean(hits[0.8]) == pytest.approx(0.8, abs=0.03)


def test_belief_propagation_standard_errors_match_the_exact_ones() -> None:
    rng = np.random.default_rng(8)
    theta = rng.normal(0, 1, 1000)
    pairs = random_pairs(1000, 10000, rng)
    outcomes = pairwise_outcomes(theta, pairs, rng)
    exact = bradley_terry(pairs, outcomes)
    approximate = bradley_terry(pairs, outcomes, exact_limit=0)
    assert (exact.se_method, approximate.se_method) == ("exact", "belief-propagation")
    assert np.array_equal(exact.scores, approximate.scores)
    ratio = approximate.standard_errors / exact.standard_errors
    assert np.abs(ratio - 1).max() < 0.03 and abs(ratio.mean() - 1) < 0.005


def test_disconnected_and_separated_data_give_finite_scores_with_a_prior() -> None:
    # {0, 1} and {2, 3} never meet; 0 always beats 1
    pairs = np.array([[0, 1], [0, 1], [2, 3], [3, 2]])
    fit = bradley_terry(pairs, n_items=5)
    assert np.all(np.isfinite(fit.scores)) and fit.components == 3
    assert fit.scores[0] > fit.scores[1] and fit.scores[4] == pytest.approx(0, abs=1e-9)
    # the never-compared item is known only through the prior
    assert fit.standard_errors[4] == pytest.approx(3.0 * np.sqrt(1 - 1 / 5), rel=1e-6)
    big = bradley_terry(pairs, n_items=600, exact_limit=0)  # the belief-propagation branch
    exact = bradley_terry(pairs, n_items=600)
    assert big.standard_errors == pytest.approx(exact.standard_errors, rel=1e-6)
    with pytest.raises(ScienceError, match="prior_sd"):
        bradley_terry(pairs, prior_sd=None)


def test_bootstrap_spread_matches_the_standard_errors() -> None:
    rng = np.random.default_rng(9)
    theta = rng.normal(0, 1, 30)
    pairs = rater_pairs(30, 435, seed=2)
    pairs = np.concatenate([pairs, pairs])
    outcomes = pairwise_outcomes(theta, pairs, rng)
    fit = bradley_terry(pairs, outcomes)
    boot = bootstrap_scores(pairs, outcomes, n_boot=300, seed=1)
    assert boot.shape == (300, 30)
    ratio = boot.std(axis=0).mean() / fit.standard_errors.mean()
    assert 0.9 < ratio < 1.15


def test_cluster_bootstrap_widens_intervals_when_raters_disagree() -> None:
    rng = np.random.default_rng(10)
    n, raters = 20, 12
    theta = rng.normal(0, 1, n)
    pairs, outcomes, who = [], [], []
    for rater in range(raters):
        taste = theta + rng.normal(0, 1.2, n)  # each rater's own view of the images
        own = rater_pairs(n, 60, rater=rater, seed=3)
        pairs.append(own)
        outcomes.append(pairwise_outcomes(taste, own, rng))
        who.append(np.full(len(own), rater))
    pairs, outcomes, who = np.concatenate(pairs), np.concatenate(outcomes), np.concatenate(who)
    plain = bootstrap_scores(pairs, outcomes, n_boot=150, seed=4).std(axis=0).mean()
    clustered = bootstrap_scores(pairs, outcomes, clusters=who, n_boot=150, seed=4).std(axis=0).mean()
    assert clustered > 1.15 * plain


@pytest.mark.parametrize(
    ("pairs", "outcomes", "message"),
    [
        (np.array([0, 1]), None, "shape"),
        (np.array([[0, 0]]), None, "itself"),
        (np.array([[0, 1]]), np.array([2.0]), r"\[0, 1\]"),
        (np.array([[0, 1]]), np.array([1.0, 0.0]), "one value per pair"),
        (np.zeros((0, 2), dtype=int), None, "empty"),
        (np.array([[0, 7]]), None, "outside"),
    ],
)
def test_bad_judgements_are_refused(pairs: np.ndarray, outcomes: np.ndarray | None, message: str) -> None:
    with pytest.raises(ScienceError, match=message):
        bradley_terry(pairs, outcomes, n_items=3)


def test_bradley_terry_fits_100k_judgements_quickly() -> None:
    rng = np.random.default_rng(12)
    theta = rng.normal(0, 1, 10_000)
    pairs = random_pairs(10_000, 100_000, rng)
    fit = bradley_terry(pairs, pairwise_outcomes(theta, pairs, rng))
    assert fit.se_method == "belief-propagation" and fit.iterations < 20
    assert spearmanr(fit.scores, theta)[0] > 0.85
