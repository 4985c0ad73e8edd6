"""Agreement tables over long ratings frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from itagger_lib.review import agreement as ag
from itagger_lib.review.coefficients import krippendorff_alpha

from .test_coefficients import KRIPPENDORFF_2011, SHROUT_FLEISS


def long_frame(matrix: np.ndarray, attribute: str, raters: list[str] | None = None) -> pd.DataFrame:
    raters = raters or [f"r{j}" for j in range(matrix.shape[1])]
    rows = [
        {"image_id": i + 1, "rater": raters[j], "attribute": attribute, "value": matrix[i, j]}
        for i in range(matrix.shape[0])
        for j in range(matrix.shape[1])
        if not np.isnan(matrix[i, j])
    ]
    return pd.DataFrame(rows)


def test_agreement_table_reproduces_published_values_per_level() -> None:
    ratings = pd.concat(
        [long_frame(KRIPPENDORFF_2011, "mood"), long_frame(SHROUT_FLEISS, "warmth")], ignore_index=True
    )
    table = ag.agreement_table(ratings, {"mood": "ordinal", "warmth": "interval"}, n_boot=100)
    mood = table.set_index("attribute").loc["mood"]
    warmth = table.set_index("attribute").loc["warmth"]
    assert mood["alpha"] == pytest.approx(0.815, abs=5e-4)
    assert (mood["n_units"], mood["n_pairable"], mood["n_raters"]) == (11, 40, 4)
    assert mood["alpha_ci_low"] < mood["alpha"] < mood["alpha_ci_high"]
    assert not np.isnan(mood["fleiss_kappa"]) and not np.isnan(mood["gwet_ac1"])
    assert np.isnan(mood["icc"])
    assert warmth["icc"] == pytest.approx(0.29, abs=5e-3)
    assert np.isnan(warmth["percent_agreement"])
    assert list(table.columns) == ag.TABLE_COLUMNS


def test_agreement_table_single_category_gives_note_not_crash() -> None:
    ratings = long_frame(np.ones((4, 3)), "has_tree")
    row = ag.agreement_table(ratings, {"has_tree": "nominal"}, n_boot=20).iloc[0]
    assert np.isnan(row["alpha"]) and np.isnan(row["alpha_ci_low"])
    assert row["percent_agreement"] == 1.0
    assert "single value" in row["note"]


def test_agreement_table_groups_and_ignores_repeats() -> None:
    ratings = long_frame(KRIPPENDORFF_2011, "mood")
    repeat = pd.DataFrame(
        [{"image_id": 1, "rater": "r0", "attribute": "mood", "value": 4.0, "is_repeat": True}]
    )
    ratings = pd.concat([ratings.assign(is_repeat=False), repeat], ignore_index=True)
    by = pd.Series({i: "early" if i <= 6 else "late" for i in range(1, 13)})
    table = ag.agreement_table(ratings, {"mood": "nominal"}, by=by, n_boot=0)
    assert list(table["group"]) == ["early", "late"]
    early = KRIPPENDORFF_2011[:6]
    assert table.iloc[0]["alpha"] == pytest.approx(krippendorff_alpha(early, "nominal"))
    whole = ag.agreement_table(ratings, {"mood": "nominal"}, n_boot=0).iloc[0]
    assert whole["alpha"] == pytest.approx(0.743, abs=5e-4)


def test_vlm_vs_human_compares_with_the_human_ceiling() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(1, 6, size=60).astype(float)
    humans = np.column_stack([np.clip(truth + rng.integers(-1, 2, 60), 1, 5) for _ in range(3)])
    good_vlm = truth.copy()
    random_vlm = rng.integers(1, 6, size=60).astype(float)
    matrix = np.column_stack([humans, good_vlm, random_vlm])
    ratings = long_frame(matrix, "order", ["ann", "bob", "cy", "vlm:good@v1", "vlm:random@v1"])
    table = ag.vlm_vs_human(ratings, {"order": "ordinal"}).set_index("vlm")
    assert table.loc["vlm:good@v1", "delta"] > 0
    assert table.loc["vlm:random@v1", "delta"] < 0
    assert (
        table.loc["vlm:random@v1", "vlm_pairwise_alpha"] < table.loc["vlm:random@v1", "human_pairwise_alpha"]
    )
    assert table.loc["vlm:good@v1", "n_units"] == 60
    assert table.loc["vlm:good@v1", "human_alpha"] == pytest.approx(krippendorff_alpha(humans, "ordinal"))


def test_test_retest_pairs_repeats_with_first_presentation() -> None:
    ratings = pd.DataFrame(
        {
            "image_id": [1, 2, 3, 1, 2, 3, 1, 2],
            "rater": ["ann"] * 6 + ["bob"] * 2,
            "attribute": ["order"] * 8,
            "value": [1.0, 3.0, 5.0, 1.0, 4.0, 5.0, 2.0, 2.0],
            "is_repeat": [False, False, False, True, True, True, False, False],
        }
    )
    table = ag.test_retest(ratings, {"order": "interval"})
    assert list(table["rater"]) == ["ann"]
    row = table.iloc[0]
    assert row["n_pairs"] == 3
    assert row["exact"] == pytest.approx(2 / 3)
    assert row["mean_abs_diff"] == pytest.approx(1 / 3)
    assert row["alpha"] == pytest.approx(krippendorff_alpha(np.array([[1, 1], [3, 4], [5, 5]]), "interval"))


def test_gold_accuracy_per_rater() -> None:
    ratings = pd.DataFrame(
        {
            "image_id": [1, 2, 1, 2, 3],
            "rater": ["ann", "ann", "bob", "bob", "bob"],
            "attribute": ["order"] * 5,
            "value": [3.0, 2.0, 3.0, 5.0, 1.0],
        }
    )
    gold = pd.DataFrame({"image_id": [1, 2], "attribute": ["order", "order"], "value": [3.0, 2.0]})
    table = ag.gold_accuracy(ratings, gold).set_index("rater")
    assert table.loc["ann", "accuracy"] == 1.0
    assert table.loc["bob", "accuracy"] == 0.5
    assert table.loc["bob", "mean_abs_error"] == 1.5
    assert table.loc["bob", "n_gold"] == 2


def test_codebook_levels_maps_types_and_domains() -> None:
    definition = {
        "attributes": [
            {"key": "order", "type": "ordinal", "levels": [1, 2, 3, 4, 5]},
            {"key": "style", "type": "categorical", "levels": ["modern", "gothic"]},
            {"key": "has_tree", "type": "binary"},
            {"key": "warmth", "type": "continuous"},
            {"key": "features", "type": "multi_label", "levels": ["a", "b"]},
        ]
    }
    levels, domains = ag.codebook_levels(definition)
    assert levels == {"order": "ordinal", "style": "nominal", "has_tree": "nominal", "warmth": "interval"}
    assert domains == {"order": [1.0, 2.0, 3.0, 4.0, 5.0], "style": [0.0, 1.0]}
