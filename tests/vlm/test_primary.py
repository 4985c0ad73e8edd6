"""One declared VLM run per value, and one name per rater everywhere.

A rating run and then a self-consistency audit (temperature 0.7, k = 3) give every image two
first-presentation answers from the same model; the per-image table, the export and
agreement take the primary run's alone, and the provenance names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from itagger_lib.export import export, read_provenance
from itagger_lib.review.monitor import rater_progress
from itagger_lib.review.reading import vlm_agreement
from itagger_lib.vlm.prompts import PROMPT_VERSION
from itagger_lib.widgets.inspector import Inspector

ATTRIBUTES = ["coherence", "pleasantness", "setting", "people_present"]


def _answers(ws: Any, run_ids: list[int], rater: str) -> pd.DataFrame:
    """The first-presentation answers of these runs, as the table shows them."""
    ratings = ws.ratings(raters=[rater])
    ratings = ratings[ratings["run_id"].isin(run_ids) & (ratings["repeat_index"] == 0)]
    answer = ratings["value_text"].where(ratings["value_text"].notna(), ratings["value"])
    return (
        ratings.assign(answer=answer)
        .pivot(index="image_id", columns="attribute", values="answer")
        .rename(columns=lambda a: f"vlm.{a}.answer")
        .sort_index(axis=1)
    )


def _text(values: pd.Series) -> list[str]:
    """Answers as text, numbers in one spelling (a binary 1 is 1, 1.0 or an Int64 1)."""
    return [str(v) if isinstance(v, str) else ("" if pd.isna(v) else f"{float(v):g}") for v in values]


def _table_answers(ws: Any) -> pd.DataFrame:
    table = ws.table()
    columns = sorted(c for c in table.columns if c.startswith("vlm."))
    return table[columns].astype(object).where(table[columns].notna(), None)


def test_run_and_audit_give_the_primary_run_alone(ws: Any, tmp_path: Path) -> None:
    rating = ws.rate_with_vlm(provider="stub", attributes=ATTRIBUTES, progress=False)
    _, audit = ws.vlm_audit(provider="stub", k=3, temperature=0.7, attributes=ATTRIBUTES, progress=False)
    rater = rating.rater
    assert rater == audit.rater == f"vlm:stub/stub@{PROMPT_VERSION}"
    runs = ws.vlm_runs()
    assert runs.loc[audit.run_id, "purpose"] == "audit" and runs.loc[rating.run_id, "purpose"] == "rating"
    assert runs.loc[rating.run_id, "primary"] and not runs.loc[audit.run_id, "primary"]

    primary = _answers(ws, [rating.run_id], rater)
    audited = _answers(ws, [audit.run_id], rater)
    # the audit's first answers differ from the primary run's: mixing them would show
    assert any(_text(primary[c]) != _text(audited[c]) for c in primary.columns)
    table = ws.table()
    shown = table[list(primary.columns)].loc[primary.index]
    for column in primary.columns:
        assert _text(shown[column]) == _text(primary[column]), column
    assert table.attrs["vlm"] == {
        "rater": rater, "primary_run_id": rating.run_id, "run_ids": [rating.run_id], "other_raters": []
    }  # fmt: skip
    paths = export(ws, tmp_path / "out")
    assert read_provenance(paths[1])["vlm"]["primary_run_id"] == rating.run_id
    pd.testing.assert_frame_equal(
        pd.read_parquet(paths[1])[list(primary.columns)], table[list(primary.columns)], check_dtype=False
    )

    # a rerun of the same configuration reuses the cache: the newest run is primary, same answers
    before = _table_answers(ws)
    again = ws.rate_with_vlm(provider="stub", attributes=ATTRIBUTES, progress=False)
    assert again.cache_hits == again.planned and ws.vlm_runs().loc[again.run_id, "primary"]
    assert ws.table().attrs["vlm"]["primary_run_id"] == again.run_id
    assert ws.table().attrs["vlm"]["run_ids"] == [rating.run_id]  # the answers it reused
    pd.testing.assert_frame_equal(_table_answers(ws), before)

    # choosing the audit as primary shows its first answers instead
    assert ws.set_primary_vlm_run(audit.run_id) == rater
    runs = ws.vlm_runs()
    assert runs.loc[audit.run_id, "is_primary"] and runs["primary"].sum() == 1
    shown = ws.table()[list(audited.columns)].loc[audited.index]
    for column in audited.columns:
        assert _text(shown[column]) == _text(audited[column]), column


def test_one_name_per_vlm_rater_everywhere(ws: Any, tmp_path: Path) -> None:
    report = ws.rate_with_vlm(provider="stub", attributes=ATTRIBUTES, progress=False)
    ws.vlm_audit(provider="stub", k=2, temperature=0.7, attributes=ATTRIBUTES, progress=False)
    ws.add_ratings(
        pd.DataFrame(
            [
                {"image_id": i, "rater": r, "attribute": "coherence", "value": (i + k) % 7 + 1}
                for i in range(1, 13)
                for k, r in enumerate(["ann", "bob"])
            ]
        )
    )
    name = report.rater
    assert set(ws.ratings(sources=["vlm"])["rater"]) == {name}
    assert ws.table().attrs["vlm"]["rater"] == name
    ratings_file = export(ws, tmp_path / "csv", format="csv")[0]
    assert set(pd.read_csv(ratings_file).query("source == 'vlm'")["rater"]) == {name}
    versus = vlm_agreement(ws, attributes=["coherence"])
    assert (
        list(versus["vlm"]) == [name] and versus.loc[0, "n_units"] == 12
    )  # the primary run: one answer each
    assert set(Inspector(ws, 1).ratings.query("source == 'vlm'")["rater"]) == {name}
    assert name in set(rater_progress(ws.ratings())["rater"])  # the monitor
    # the exported name is the name agreement takes: three raters named, three counted
    row = ws.agreement(attributes=["coherence"], raters=["ann", "bob", name], n_boot=0).iloc[0]
    assert row["n_raters"] == 3 and row["n_units"] == 12
    # an imported VLM rating gets the prefix; a person may not use it
    ws.add_ratings(pd.DataFrame([{"image_id": 1, "rater": "gpt-x", "attribute": "coherence", "value": 3}]),
                   source="vlm")  # fmt: skip
    assert "vlm:gpt-x" in set(ws.ratings(sources=["vlm"])["rater"])
    from itagger_lib.errors import RatingError

    with pytest.raises(RatingError, match="VLM raters"):
        ws.add_ratings(
            pd.DataFrame([{"image_id": 1, "rater": "vlm:me", "attribute": "coherence", "value": 3}])
        )
