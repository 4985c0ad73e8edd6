"""Agreement coefficients against published worked examples and independent implementations."""

from __future__ import annotations

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from itagger_lib.review.coefficients import (
    bootstrap_ci,
    cohen_kappa,
    fleiss_kappa,
    fleiss_kappa_counts,
    gwet_ac1,
    icc,
    krippendorff_alpha,
    pairable,
    percent_agreement,
    ratings_matrix,
    undefined_reason,
)
from itagger_lib.review.disagreement import unit_disagreement

nan = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: 4 observers
# (rows A-D) x 12 units, with missing values. Transposed to units x raters.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
        [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
    ]
).T

# Fleiss (1971), Table 1: 30 patients, 6 psychiatrists each, 5 diagnoses; kappa = .430.
FLEISS_1971 = np.array(
    [
        [4, 4, 4, 4, 4, 4], [2, 2, 2, 5, 5, 5], [2, 3, 3, 3, 3, 5], [5, 5, 5, 5, 5, 5],
        [2, 2, 2, 4, 4, 4], [1, 1, 3, 3, 3, 3], [3, 3, 3, 3, 5, 5], [1, 1, 3, 3, 3, 4],
        [1, 1, 4, 4, 4, 4], [5, 5, 5, 5, 5, 5], [1, 4, 4, 4, 4, 4], [1, 2, 4, 4, 4, 4],
        [2, 2, 2, 3, 3, 3], [1, 4, 4, 4, 4, 4], [2, 2, 4, 4, 4, 5], [3, 3, 3, 3, 3, 5],
        [1, 1, 1, 4, 5, 5], [1, 1, 1, 1, 1, 2], [2, 2, 4, 4, 4, 4], [1, 3, 3, 5, 5, 5],
        [5, 5, 5, 5, 5, 5], [2, 4, 4, 4, 4, 4], [2, 2, 4, 5, 5, 5], [1, 1, 4, 4, 4, 4],
        [1, 4, 4, 4, 4, 5], [2, 2, 2, 2, 2, 4], [1, 1, 1, 1, 5, 5], [2, 2, 4, 4, 4, 4],
        [1, 3, 3, 3, 3, 3], [5, 5, 5, 5, 5, 5],
    ],
    dtype=float,
)  # fmt: skip

# Wikipedia "Fleiss' kappa" worked example: 10 subjects x 5 categories, 14 raters; kappa = 0.210.
WIKIPEDIA_FLEISS = np.array(
    [
        [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
        [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
    ],
    dtype=float,
)  # fmt: skip

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float
)


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_alpha_matches_krippendorff_2011(level: str, published: float) -> None:
    assert krippendorff_alpha(KRIPPENDORFF_2011, level) == pytest.approx(published, abs=5e-4)


def test_interval_alpha_closed_form_equals_the_krippendorff_package() -> None:
    rng = np.random.default_rng(11)
    truth = rng.normal(size=80)
    matrix = truth[:, None] + rng.normal(scale=0.7, size=(80, 4))
    matrix[rng.random(matrix.shape) < 0.3] = nan
    expected = krippendorff.alpha(matrix.T, level_of_measurement="interval")
    assert krippendorff_alpha(matrix, "interval") == pytest.approx(expected, abs=1e-10)


def test_krippendorff_pairable_counts_match_2011_example() -> None:
    # Unit 12 has a single value and is not pairable: 11 units, n.. = 40 pairable values.
    assert pairable(KRIPPENDORFF_2011) == (11, 40)


def test_krippendorff_alpha_hand_computed_two_coders() -> None:
    # Krippendorff (2011) section A: 2 coders, 10 units, binary; alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha(np.column_stack([a, b]), "nominal") == pytest.approx(0.095, abs=5e-4)


def test_krippendorff_alpha_rejects_unknown_level() -> None:
    with pytest.raises(ValueError, match="unknown level of measurement 'cardinal'"):
        krippendorff_alpha(KRIPPENDORFF_2011, "cardinal")


@pytest.mark.parametrize("weights", [None, "linear", "quadratic"])
def test_cohen_kappa_matches_sklearn(weights: str | None) -> None:
    rng = np.random.default_rng(7)
    a = rng.integers(1, 6, size=200)
    b = np.clip(a + rng.integers(-1, 2, size=200), 1, 5)
    expected = cohen_kappa_score(a, b, weights=weights)
    assert cohen_kappa(a, b, weights=weights) == pytest.approx(expected, abs=1e-12)


def test_cohen_kappa_drops_units_missing_a_rating() -> None:
    a = np.array([1, 2, 3, nan, 1, 2])
    b = np.array([1, 2, 2, 3, nan, 2])
    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score([1, 2, 3, 2], [1, 2, 2, 2]))


def test_cohen_kappa_textbook_example() -> None:
    # Wikipedia "Cohen's kappa": 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15; kappa = 0.4.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_fleiss_kappa_matches_fleiss_1971() -> None:
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(0.430, abs=5e-4)
    counts, _ = aggregate_raters(FLEISS_1971.astype(int))
    assert fleiss_kappa(FLEISS_1971) == pytest.approx(sm_fleiss_kappa(counts), abs=1e-12)


def test_fleiss_kappa_counts_matches_wikipedia_and_statsmodels() -> None:
    assert fleiss_kappa_counts(WIKIPEDIA_FLEISS) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa_counts(WIKIPEDIA_FLEISS) == pytest.approx(
        sm_fleiss_kappa(WIKIPEDIA_FLEISS), abs=1e-12
    )


def test_gwet_ac1_two_raters_hand_computed() -> None:
    # 100 units, 2 raters: yes/yes 80, yes/no 5, no/yes 10, no/no 5 (the kappa paradox).
    # pa = 85/100; pi_yes = (85/100 + 90/100)/2 = 0.875; pe = 2 * 0.875 * 0.125 = 0.21875;
    # AC1 = (0.85 - 0.21875) / (1 - 0.21875) = 0.808 (Gwet 2008, eq. 11 for 2 raters, 2 categories),
    # while Cohen's kappa = (0.85 - 0.78) / 0.22 = 0.318.
    a = [1] * 80 + [1] * 5 + [0] * 10 + [0] * 5
    b = [1] * 80 + [0] * 5 + [1] * 10 + [0] * 5
    matrix = np.column_stack([a, b])
    assert gwet_ac1(matrix) == pytest.approx((0.85 - 0.21875) / 0.78125, abs=1e-12)
    assert cohen_kappa(a, b) == pytest.approx(0.07 / 0.22, abs=1e-12)


# Gwet (2014), Handbook of Inter-Rater Reliability, 4th ed.: 5 observers x 15 units on a 0-3 scale,
# with missing data (the "raw_5observers" data of the irrCAC packages); AC1 = 0.497.
GWET_5_OBSERVERS = np.array(
    [
        [1, 1, 2, nan, 0, 0, 1, 1, 2, 2, nan, 0, 1, 3, 1],
        [1, 1, 3, 0, 0, 0, 0, nan, 2, 1, 1, 0, 2, 3, 1],
        [2, 0, 3, 0, 0, 0, 2, 2, 2, 1, 0, 0, 2, 2, 1],
        [nan, 1, 3, nan, nan, nan, nan, 0, nan, 1, 0, 0, 2, 2, nan],
        [2, nan, nan, 0, 0, 0, 1, nan, 2, nan, nan, nan, nan, 3, 1],
    ]
).T


def test_gwet_ac1_matches_gwet_2014_worked_examples() -> None:
    # Gwet (2014) analyses the same 4 raters x 12 units as Krippendorff (2011): pa = .818,
    # pe = .190, AC1 = .775 (values as reproduced by the irrCAC package's tests).
    assert gwet_ac1(KRIPPENDORFF_2011) == pytest.approx(0.775, abs=5e-4)
    assert gwet_ac1(GWET_5_OBSERVERS) == pytest.approx(0.497, abs=5e-4)


def test_gwet_ac1_multi_rater_with_missing_hand_computed() -> None:
    # 3 units x 3 raters, categories {1, 2}; unit 3 has one rating only.
    matrix = np.array([[1, 1, 2], [2, 2, 2], [1, nan, nan]])
    p_a = (2 / 6 + 6 / 6) / 2  # units 1 and 2 (r_i >= 2)
    pi_1 = (2 / 3 + 0 + 1) / 3  # all 3 rated units
    p_e = pi_1 * (1 - pi_1) + (1 - pi_1) * pi_1  # / (q - 1) with q = 2
    assert gwet_ac1(matrix) == pytest.approx((p_a - p_e) / (1 - p_e), abs=1e-12)


@pytest.mark.parametrize(
    ("form", "published"),
    [
        ("ICC(1,1)", 0.17),
        ("ICC(2,1)", 0.29),
        ("ICC(3,1)", 0.71),
        ("ICC(1,k)", 0.44),
        ("ICC(2,k)", 0.62),
        ("ICC(3,k)", 0.91),
    ],
)
def test_icc_matches_shrout_fleiss_1979(form: str, published: float) -> None:
    assert icc(SHROUT_FLEISS, form) == pytest.approx(published, abs=5e-3)


def test_icc_uses_complete_units_only() -> None:
    with_gap = np.vstack([SHROUT_FLEISS, [3, nan, 4, 5]])
    assert icc(with_gap, "ICC(2,1)") == pytest.approx(icc(SHROUT_FLEISS, "ICC(2,1)"))


def test_percent_agreement_pools_pairs() -> None:
    # unit 1: 3 raters, 1 agreeing pair of 3 -> 2 of 6 ordered pairs; unit 2: 2 of 2; unit 3 unpaired.
    matrix = np.array([[1, 1, 2], [2, 2, nan], [1, nan, nan]])
    assert percent_agreement(matrix) == pytest.approx((2 + 2) / (6 + 2))


def test_single_category_everywhere_is_nan_with_a_reason() -> None:
    matrix = np.full((5, 3), 2.0)
    assert undefined_reason(matrix).startswith("a single value everywhere")
    for value in (
        krippendorff_alpha(matrix, "nominal"),
        krippendorff_alpha(matrix, "interval"),
        fleiss_kappa(matrix),
        gwet_ac1(matrix),
        cohen_kappa(matrix[:, 0], matrix[:, 1]),
    ):
        assert np.isnan(value)
    assert percent_agreement(matrix) == 1.0


@pytest.mark.parametrize(
    ("matrix", "reason"),
    [
        (np.full((4, 3), nan), "no ratings"),
        (np.array([[1.0], [2.0], [3.0]]), "fewer than 2 raters"),
        (np.array([[1, nan], [nan, 2]]), "no unit rated by 2 or more raters"),
        (np.empty((0, 0)), "no ratings"),
    ],
)
def test_degenerate_data_gives_nan_not_a_crash(matrix: np.ndarray, reason: str) -> None:
    assert undefined_reason(matrix) == reason
    assert np.isnan(krippendorff_alpha(matrix, "ordinal"))
    assert np.isnan(fleiss_kappa(matrix))
    assert np.isnan(gwet_ac1(matrix))
    assert np.isnan(icc(matrix))
    assert np.isnan(percent_agreement(matrix))


def test_bootstrap_ci_is_reproducible_and_brackets_the_estimate() -> None:
    estimate = krippendorff_alpha(FLEISS_1971, "nominal")
    first = bootstrap_ci(FLEISS_1971, lambda m: krippendorff_alpha(m, "nominal"), n_boot=200, seed=3)
    again = bootstrap_ci(FLEISS_1971, lambda m: krippendorff_alpha(m, "nominal"), n_boot=200, seed=3)
    assert first == again
    assert first.low < estimate < first.high
    assert first.low > 0.2 and first.high < 0.65
    assert first.n_valid == 200


def test_ratings_matrix_pivots_long_ratings_and_keeps_first_repeat() -> None:
    long = pd.DataFrame(
        {
            "image_id": [1, 1, 2, 2, 1],
            "rater": ["ann", "bob", "ann", "bob", "ann"],
            "value": [3.0, 4.0, 1.0, 1.0, 5.0],
        }
    )
    matrix = ratings_matrix(long)
    assert matrix.loc[1, "ann"] == 3.0
    assert matrix.shape == (2, 2)


def test_unit_disagreement_orders_contested_units_first() -> None:
    matrix = pd.DataFrame([[1, 1, 1], [1, 2, 3], [1, 1, 2], [4, nan, nan]], index=[10, 11, 12, 13])
    nominal = unit_disagreement(matrix, "nominal")
    assert list(nominal.iloc[:3]) == pytest.approx([0.0, 1.0, 1 - 2 / 6])
    assert np.isnan(nominal[13])
    interval = unit_disagreement(matrix, "interval")
    # pairs (1,2), (1,3), (2,3) both ways: (1 + 4 + 1) * 2 / 6 = 2 = 2 * var
    assert interval[11] == pytest.approx(2.0)
    assert list(interval.sort_values(ascending=False).index[:2]) == [11, 12]
