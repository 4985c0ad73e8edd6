"""The adjudication queue ranks by disagreement at each attribute's level of measurement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Rating
from itagger_lib.review import adjudication
from itagger_lib.review.coefficients import krippendorff_alpha
from itagger_lib.review.disagreement import expected_disagreement, unit_disagreement

# material is nominal, coded 1 = brick, 2 = concrete, 9 = other (stored as level indices
# 0, 1, 2): the codes are names, so 1 vs 9 is no "more" disagreement than 1 vs 2.
CODEBOOK = """
name: materials
version: "1"
attributes:
  - key: material
    question: Main facade material?
    type: categorical
    levels:
      - {value: 1, label: Brick, hotkey: "1"}
      - {value: 2, label: Concrete, hotkey: "2"}
      - {value: 9, label: Other, hotkey: "9"}
  - key: warmth
    question: How warm does the scene feel?
    type: ordinal
    points: 7
    anchors: {1: Cold, 7: Warm}
"""


def _answer(attribute: str, value: int) -> int | str:
    """Categorical answers are level names ("1", "2", "9"); stored as level indices 0, 1, 2."""
    return str(value) if attribute == "material" else value


def _rate(ws, answers: dict[int, dict[str, list[int]]], source: str = "import") -> None:  # type: ignore[no-untyped-def]
    rows = [
        {"image_id": image, "rater": f"r{k}", "attribute": attribute, "value": _answer(attribute, value)}
        for image, by_attribute in answers.items()
        for attribute, values in by_attribute.items()
        for k, value in enumerate(values)
    ]
    ws.add_ratings(pd.DataFrame(rows), source=source)


@pytest.fixture
def rated(workspace, sample_dir: Path):  # type: ignore[no-untyped-def]
    workspace.ingest(sample_dir, progress=False)
    workspace.load_codebook(CODEBOOK)
    ids = [int(i) for i in workspace.images().index[:4]]
    a, b, c, d = ids
    _rate(
        workspace,
        {
            a: {"material": [1, 1, 9], "warmth": [4, 4, 4]},  # two agree: 1/3 of pairs agree
            b: {"material": [1, 2, 9], "warmth": [1, 4, 7]},  # all three differ
            c: {"material": [1, 2, 2], "warmth": [3, 4, 4]},
            d: {"material": [2, 2, 2], "warmth": [2, 6, 6]},
        },
    )
    return workspace, ids


def test_nominal_order_is_pairwise_disagreement_not_sd(rated) -> None:  # type: ignore[no-untyped-def]
    ws, (a, b, c, d) = rated
    contested = adjudication.queue(ws, attribute="material", limit=None)
    # SD would put a (1, 1, 9, stored 0, 0, 2: SD 0.94) above b (1, 2, 9 → 0, 1, 2: SD 0.82);
    # b is the one where no two raters agree.
    sd_order = [a, b, c, d]
    assert list(contested["image_id"]) == [b, a, c, d] != sd_order
    assert list(contested["disagreement"]) == pytest.approx([1.0, 2 / 3, 2 / 3, 0.0])
    assert set(contested["level"]) == {"nominal"}
    assert contested["human_sd"].isna().all()  # an SD of category codes is not shown


def test_attributes_of_different_levels_rank_on_one_scale(rated) -> None:  # type: ignore[no-untyped-def]
    ws, (a, b, c, d) = rated
    contested = adjudication.queue(ws, limit=None).set_index(["image_id", "attribute"])
    assert contested.loc[(a, "warmth"), "level"] == "ordinal"
    assert contested.loc[(b, "warmth"), "disagreement"] == pytest.approx(2 * np.var([1, 4, 7], ddof=1))
    # relative to each attribute's expected disagreement over all its ratings
    for key, level in (("material", "nominal"), ("warmth", "ordinal")):
        rows = contested.xs(key, level="attribute")
        values = {a: [0, 0, 2], b: [0, 1, 2], c: [0, 1, 1], d: [1, 1, 1]}  # stored indices
        if key == "warmth":
            values = {a: [4, 4, 4], b: [1, 4, 7], c: [3, 4, 4], d: [2, 6, 6]}
        expected = expected_disagreement(pd.DataFrame.from_dict(values, orient="index"), level)
        assert list(rows["relative_disagreement"]) == pytest.approx(list(rows["disagreement"] / expected))
    # warmth: b 18 / 5.62 = 3.2, d 10.7 / 5.62 = 1.9; material: b 1 / (2/3) = 1.5
    assert list(contested.index[:3]) == [(b, "warmth"), (d, "warmth"), (b, "material")]


def test_vlm_conflict_is_level_aware(rated) -> None:  # type: ignore[no-untyped-def]
    ws, (a, _, _, d) = rated
    # the VLM says 9 for a (one of three humans agrees) and 1 for d (none agrees); the
    # distance of means would rank a first (|2 - 0.67| > |0 - 1| on the stored indices)
    _rate(ws, {a: {"material": [9]}, d: {"material": [1]}}, source="vlm")
    conflict = adjudication.queue(ws, attribute="material", by="vlm_conflict", limit=None)
    assert list(conflict["image_id"]) == [d, a]
    assert list(conflict["conflict"]) == pytest.approx([1.0, 2 / 3])


def test_ordinal_summaries_are_medians_never_means(rated) -> None:  # type: ignore[no-untyped-def]
    """warmth is ordinal: medians of the codes, no mean or SD; the VLM conflict is between medians."""
    ws, (a, b, c, d) = rated
    _rate(ws, {b: {"warmth": [2]}, d: {"warmth": [5]}}, source="vlm")
    contested = adjudication.queue(ws, attribute="warmth", limit=None).set_index("image_id")
    # hand-computed: a (4, 4, 4), b (1, 4, 7), c (3, 4, 4), d (2, 6, 6)
    assert contested.loc[[a, b, c, d], "human_median"].tolist() == [4, 4, 4, 6]
    assert contested[["human_mean", "human_sd", "vlm_mean"]].isna().all().all()
    conflict = adjudication.queue(ws, attribute="warmth", by="vlm_conflict", limit=None)
    # b: |2 - 4| = 2, d: |5 - 6| = 1 (means would give |2 - 4| = 2 and |5 - 4.67| = 0.33)
    assert list(conflict["image_id"]) == [b, d]
    assert list(conflict["conflict"]) == [2.0, 1.0]
    assert list(conflict["vlm_median"]) == [2.0, 5.0]


def test_adjudicated_pairs_leave_the_queue(rated) -> None:  # type: ignore[no-untyped-def]
    ws, (_, b, _, _) = rated
    rating_id = adjudication.adjudicate(ws, b, "material", "9", note="discussed")
    with ws.engine.connect() as connection:
        stored = connection.execute(
            sa.select(Rating.value, Rating.value_text, Rating.source).where(Rating.id == rating_id)
        ).one()
    assert tuple(stored) == (2.0, "9", "adjudication")  # the label's index, as the write path stores it
    contested = adjudication.queue(ws, attribute="material", limit=None)
    assert b not in set(contested["image_id"])
    assert b in set(adjudication.queue(ws, attribute="warmth", limit=None)["image_id"])


def test_unit_terms_add_up_to_krippendorffs_alpha() -> None:
    """D_o = Σ_u m_u d_u / n.., and alpha = 1 - D_o / D_e, at the nominal and interval level."""
    rng = np.random.default_rng(3)
    matrix = pd.DataFrame(rng.integers(1, 5, size=(40, 4)).astype(float))
    matrix = matrix.mask(rng.random(matrix.shape) < 0.25)
    for level in ("nominal", "interval"):
        d = unit_disagreement(matrix, level)
        m = matrix.notna().sum(axis=1)
        pairable = m >= 2
        observed = float((m[pairable] * d[pairable]).sum() / m[pairable].sum())
        alpha = 1 - observed / expected_disagreement(matrix, level)
        assert alpha == pytest.approx(krippendorff_alpha(matrix, level), abs=1e-9), level
