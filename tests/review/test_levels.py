"""Per-image values follow the level of measurement: hand-computed expectations for every
aggregate (nominal, binary, ordinal, interval, multi-label, ties, missing), in the table,
``rating_means`` and the explorer, and a BN export checked variable by variable against the
codebook. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib import __version__, browse
from itagger_lib.codebook import parse_codebook
from itagger_lib.db.models import Codebook, Image, Metric, Rating, RatingMean, Run
from itagger_lib.errors import ArgumentError, ScienceError, UnknownNameError
from itagger_lib.export import export
from itagger_lib.ratings import frames
from itagger_lib.ratings.aggregate import aggregate

CODEBOOK = """
name: levels
version: "1"
attributes:
  - key: setting
    question: Which setting?
    type: categorical
    levels: [{value: interior}, {value: exterior_urban}, {value: exterior_natural}, {value: mixed}]
  - key: people
    question: Are people visible?
    type: binary
  - key: calm
    question: How calm?
    type: ordinal
    points: 5
    anchors: {1: Not calm, 5: Very calm}
  - key: depth
    question: Depth of view in metres?
    type: continuous
    min: 0
    max: 500
  - key: materials
    question: Which materials?
    type: multi_label
    levels: [{value: wood}, {value: glass}, {value: concrete}]
"""
BOOK = parse_codebook(CODEBOOK)
ATTRIBUTES = {a.key: a for a in BOOK.attributes}

# image → attribute → answers of raters r0, r1, ... (first presentations)
ANSWERS: dict[str, dict[str, list[object]]] = {
    "A": {
        "setting": ["exterior_natural", "exterior_natural", "mixed"],
        "people": [1, 0, 1],
        "calm": [3, 4],
        "depth": [10.0, 20.0, 60.0],
        "materials": [["wood", "glass"], ["wood"], []],
    },
    "B": {
        "setting": ["exterior_natural", "mixed"],  # a tie
        "people": [0, 1],  # a tie
        "calm": [2, 4, 5],  # median 4, mean 3.667
        "depth": [5.0],  # one rating: no SD
    },
    "C": {"setting": ["interior"], "people": [0], "calm": [5]},
    "D": {},  # nobody rated it
}


def _long(answers: dict[str, dict[str, list[object]]]) -> pd.DataFrame:
    rows = []
    for image, attributes in answers.items():
        for key, values in attributes.items():
            for k, value in enumerate(values):
                number, text = ATTRIBUTES[key].to_columns(value)
                rows.append({"image_id": image, "attribute": key, "rater": f"r{k}", "value": number,
                             "value_text": text})  # fmt: skip
    return pd.DataFrame(rows)


def test_aggregate_by_level_hand_computed() -> None:
    table = aggregate(_long(ANSWERS), ATTRIBUTES, ordinal=("median", "median_low", "mean_as_interval"))
    a, b, c = table.loc["A"], table.loc["B"], table.loc["C"]
    # categorical: the modal category and every level's share; a tie has no mode
    assert a["rating.setting.mode"] == "exterior_natural" and pd.isna(a["rating.setting.tied_modes"])
    assert a["rating.setting.mode_share"] == pytest.approx(2 / 3)
    shares = [
        a[f"rating.setting.share.{v}"] for v in ("interior", "exterior_urban", "exterior_natural", "mixed")
    ]
    assert shares == pytest.approx([0, 0, 2 / 3, 1 / 3])
    assert pd.isna(b["rating.setting.mode"]) and b["rating.setting.tied_modes"] == "exterior_natural;mixed"
    assert b["rating.setting.mode_share"] == 0.5 and b["rating.setting.n"] == 2
    assert c["rating.setting.mode"] == "interior" and c["rating.setting.share.interior"] == 1.0
    # binary: categories 0/1, not a mean of codes
    assert a["rating.people.mode"] == 1 and a["rating.people.share.1"] == pytest.approx(2 / 3)
    assert pd.isna(b["rating.people.mode"]) and b["rating.people.tied_modes"] == "0;1"
    # ordinal: the median (midpoint of the middle two for even n), the lower median, and the
    # mean only as the labelled mean_as_interval
    assert (a["rating.calm.median"], a["rating.calm.median_low"], a["rating.calm.mean_as_interval"]) == (
        3.5,
        3,
        3.5,
    )
    assert (b["rating.calm.median"], b["rating.calm.median_low"]) == (4, 4)
    assert b["rating.calm.mean_as_interval"] == pytest.approx(11 / 3)
    assert c["rating.calm.median"] == 5 and c["rating.calm.n"] == 1
    # interval: mean, SD (ddof 1) and n; one rating has no SD
    assert a["rating.depth.mean"] == 30.0 and a["rating.depth.sd"] == pytest.approx(math.sqrt(700))
    assert b["rating.depth.mean"] == 5.0 and np.isnan(b["rating.depth.sd"]) and b["rating.depth.n"] == 1
    # multi-label: the share of ratings that chose each label (an empty answer counts)
    assert [a[f"rating.materials.share.{v}"] for v in ("wood", "glass", "concrete")] == pytest.approx(
        [2 / 3, 1 / 3, 0]
    )
    assert a["rating.materials.n"] == 3
    # missing: an attribute an image was not rated on has n = 0 and no statistic
    assert b["rating.materials.n"] == 0 and np.isnan(b["rating.materials.share.wood"])
    assert c["rating.depth.n"] == 0 and np.isnan(c["rating.depth.mean"])
    assert "D" not in table.index
    described = table.attrs["columns"]
    assert described["rating.calm.median"] == {
        "source": "rating", "attribute": "calm", "type": "ordinal", "level": "ordinal", "statistic": "median",
        "meaning": "median of the scale points (midpoint of the two middle ratings when n is even)",
    }  # fmt: skip
    assert described["rating.setting.share.mixed"]["category"] == "mixed"


def _fill(ws) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Images A-D, the answers above as human ratings (plus a repeat, a blank and an
    adjudication), a science run with one metric binned and one without cut points."""
    start = datetime(2026, 1, 1, 9, tzinfo=UTC)
    with ws.session() as session:
        images = {
            name: Image(sha256=f"{i:064x}", ext="jpg", format="JPEG", width=10, height=10, bytes=100,
                        source_name=f"{name}.jpg", source_path=f"/in/{name}.jpg", ingested_by="tester")
            for i, name in enumerate("ABCD")
        }  # fmt: skip
        codebook = Codebook(name=BOOK.name, version=BOOK.version, content_hash=BOOK.content_hash,
                            source_text=CODEBOOK, definition=BOOK.to_dict(), created_by="tester")  # fmt: skip
        science = Run(kind="science", version=__version__, status="succeeded", created_by="tester",
                      params_hash="p" * 64,
                      details={"cut_points": {"complexity.edge_density": [0.1, 0.2]}})  # fmt: skip
        session.add_all([*images.values(), codebook, science])
        session.flush()
        rows = []

        def rate(image: str, key: str, rater: str, value: object, **extra: object) -> None:
            number, text = (None, None) if value is None else ATTRIBUTES[key].to_columns(value)
            rows.append(Rating(image_id=images[image].id, attribute=key, codebook_id=codebook.id, rater=rater,
                               source=extra.pop("source", "human"), value=number, value_text=text,
                               rated_at=start, **extra))  # fmt: skip

        for image, attributes in ANSWERS.items():
            for key, values in attributes.items():
                for k, value in enumerate(values):
                    rate(image, key, f"r{k}", value)
        rate("A", "calm", "r0", 1, is_repeat=True)  # a repeated item: test-retest, not the table
        rate("C", "calm", "r1", None)  # a rating without a value is missing, not counted
        rate("B", "setting", "judge", "mixed", source="adjudication")
        for name, value in zip("ABCD", (0.05, 0.15, 0.25, None), strict=True):
            for key, number in (("complexity.edge_density", value), ("colour.warmth", 0.5)):
                session.add(
                    Metric(image_id=images[name].id, run_id=science.id, params_hash="p" * 64, key=key,
                           value=number, metric_version="1", package_version=__version__)
                )  # fmt: skip
        session.add_all(rows)
        session.commit()
        return {name: image.id for name, image in images.items()} | {"science": science.id}


def test_table_rating_means_and_explorer_follow_the_level(workspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ids = _fill(ws)
    table = ws.table()
    a, b, c, d = (table.loc[ids[name]] for name in "ABCD")
    assert (
        a["rating.setting.mode"] == "exterior_natural"
        and b["rating.setting.tied_modes"] == "exterior_natural;mixed"
    )
    # the consensus is its own column: it does not overwrite the tie
    assert b["rating.setting.adjudicated"] == "mixed" and pd.isna(b["rating.setting.mode"])
    assert a["rating.calm.median"] == 3.5 and a["rating.calm.n"] == 2  # the repeat is left out
    assert c["rating.calm.n"] == 1  # the blank is not a rating
    assert "rating.calm.mean_as_interval" not in table and "rating.calm.mean" not in table
    assert ws.table(ordinal_mean=True).loc[ids["B"], "rating.calm.mean_as_interval"] == pytest.approx(11 / 3)
    assert a["rating.depth.sd"] == pytest.approx(math.sqrt(700))
    assert [d[f"rating.{k}.n"] for k in ("setting", "people", "calm", "depth", "materials")] == [0] * 5
    assert not [
        c for c in table.columns if c.startswith("rating.") and c.split(".")[-1] in ("mean",) and "calm" in c
    ]

    # rating_means keeps the statistic of every level; the explorer reads the attribute's own
    with ws.engine.connect() as connection:
        kept = pd.read_sql(sa.select(RatingMean).where(RatingMean.attribute == "calm"), connection)
    kept = kept.set_index("image_id").loc[[ids["A"], ids["B"], ids["C"]]]
    assert list(kept["n"]) == [2, 3, 1]  # A's repeat and C's blank do not count
    assert list(kept["median"]) == [3.5, 4.0, 5.0]
    assert list(kept["mean"]) == pytest.approx([3.5, 11 / 3, 5.0])
    assert list(kept["modes"]) == [2, 3, 1] and list(kept["mode_share"]) == pytest.approx([1 / 2, 1 / 3, 1])
    assert kept["mode"].isna().tolist() == [True, True, False] and kept.loc[ids["C"], "mode"] == 5.0
    assert frames.image_statistic(ws, "calm").to_dict() == {ids["A"]: 3.5, ids["B"]: 4.0, ids["C"]: 5.0}
    assert frames.image_statistic(ws, "setting").to_dict() == {
        ids["A"]: "exterior_natural",
        ids["C"]: "interior",
    }
    assert frames.image_statistic(ws, "people").to_dict() == {ids["A"]: 1, ids["C"]: 0}
    assert frames.image_statistic(ws, "depth").to_dict() == {ids["A"]: 30.0, ids["B"]: 5.0}
    with pytest.raises(ArgumentError, match="multi-label"):
        frames.image_statistic(ws, "materials")
    # a range on an ordinal attribute is a range of medians: B (median 4, mean 3.67) is in
    frame, total = browse.page(ws, browse.Query(rating_ranges={"calm": (3.8, None)}, sort="rating:calm"))
    assert list(frame["id"]) == [ids["B"], ids["C"]] and total == 2
    frame, _ = browse.page(ws, browse.Query(sort="rating:calm", descending=True))
    assert list(frame["sort_value"]) == [5.0, 4.0, 3.5]
    frame, total = browse.page(ws, browse.Query(rating_modes={"setting": "exterior_natural"}))
    assert list(frame["id"]) == [ids["A"]] and total == 1
    assert browse.page(ws, browse.Query(rating_modes={"people": 0}))[1] == 1  # B's tie is no mode
    with pytest.raises(ArgumentError, match="nominal"):
        browse.page(ws, browse.Query(sort="rating:setting"))
    with pytest.raises(ArgumentError, match="nominal"):
        browse.page(ws, browse.Query(rating_ranges={"setting": (1, 2)}))
    with pytest.raises(ArgumentError, match="ordinal"):
        browse.page(ws, browse.Query(rating_modes={"calm": 3}))
    with pytest.raises(UnknownNameError, match="interior, mixed"):
        browse.page(ws, browse.Query(rating_modes={"setting": "outdoor"}))


def test_unknown_names_raise_listing_the_known_ones(workspace) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ids = _fill(ws)
    with pytest.raises(
        ScienceError, match=f"run 999 is not a science run .*; science runs: {ids['science']}$"
    ):
        ws.table(run=999)
    with pytest.raises(
        UnknownNameError, match=r"unknown rater 'r9'; known raters: judge, r0, r1, r2"
    ) as caught:
        ws.ratings(raters=["r9"])
    assert caught.value.known == ["judge", "r0", "r1", "r2"]
    with pytest.raises(UnknownNameError, match="unknown attribute 'clam'; known attributes: calm, depth"):
        ws.ratings(attributes=["clam"])
    with pytest.raises(UnknownNameError, match="unknown source 'humans'"):
        ws.ratings(sources=["humans"])
    with pytest.raises(UnknownNameError, match="unknown rater 'R0'"):
        ws.agreement(raters=["r0", "R0"], n_boot=0)
    with pytest.raises(UnknownNameError, match="unknown attribute 'clam'"):
        ws.agreement(attributes=["clam"], n_boot=0)
    with pytest.raises(ArgumentError, match="multi-label"):
        ws.agreement(attributes=["materials"], n_boot=0)
    with pytest.raises(
        UnknownNameError,
        match=r"unknown metric 'edge_density'; known metrics: colour\.warmth, complexity\.edge_density$",
    ):
        browse.page(ws, browse.Query(metric_ranges={"edge_density": (0, 1)}))
    with pytest.raises(UnknownNameError, match="unknown attribute 'clam'"):
        browse.page(ws, browse.Query(sort="rating:clam"))
    with pytest.raises(UnknownNameError, match="VLM run"):
        ws.set_primary_vlm_run(12345)
    with pytest.raises(UnknownNameError, match="VLM rater"):
        ws.table(vlm_rater="vlm:openai/gpt-4o-mini@1")
    with pytest.raises(ArgumentError, match=r"write \['r0'\]"):
        ws.ratings(raters="r0")  # type: ignore[arg-type]
    # known names filter as before; three raters named are three raters counted
    assert ws.agreement(attributes=["calm"], raters=["r0", "r1", "r2"], n_boot=0).loc[0, "n_raters"] == 3


def _check_variable(variable: dict, column: pd.Series, cut_points: dict, values: pd.Series | None) -> None:  # type: ignore[type-arg]
    """One BN variable against its definition: states from the codebook or stored cut points."""
    assert set(column) <= {*variable["states"], ""}, variable["name"]
    if variable["source"] == "metric":
        assert variable["cut_points"] == cut_points[variable["name"]]
        low, high = variable["cut_points"]
        assert values is not None
        expected = [
            "" if pd.isna(x) else "low" if x <= low else "mid" if x <= high else "high" for x in values
        ]
        assert list(column) == expected
        return
    attribute = ATTRIBUTES[variable["attribute"]]
    assert variable["type"] == attribute.type and variable["cut_points"] is None
    if attribute.type == "multi_label":
        assert variable["states"] == ["no", "yes"] and variable["category"] in attribute.values
    else:
        assert variable["states"] == [str(v) for v in attribute.values]


def test_bn_export_every_variable_checked_against_its_codebook_entry(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ids = _fill(ws)
    bn_csv, codebook_json = export(ws, tmp_path / "bn", format="bn")
    states = (
        pd.read_csv(bn_csv, keep_default_na=False, dtype=str).astype({"image_id": int}).set_index("image_id")
    )
    document = json.loads(codebook_json.read_text())
    variables = {v["name"]: v for v in document["variables"]}
    cut_points = {"complexity.edge_density": [0.1, 0.2]}
    metrics = ws.metrics()
    assert list(states.columns) == list(variables)
    for name, variable in variables.items():
        _check_variable(variable, states[name], cut_points, metrics.get(name))
    assert all(v.get("cut_source") in (None, "stored") for v in variables.values())  # no tertiles invented
    expected = {
        "rating.setting.mode": ["exterior_natural", "", "interior", ""],  # B ties: missing
        "rating.people.mode": ["1", "", "0", ""],
        "rating.calm.median_low": ["3", "4", "5", ""],  # A: 3 and 4, the lower median
        "rating.materials.majority.wood": ["yes", "", "", ""],  # 2 of 3
        "rating.materials.majority.glass": ["no", "", "", ""],  # 1 of 3
        "complexity.edge_density": ["low", "mid", "high", ""],
    }
    for name, column in expected.items():
        assert list(states.loc[[ids[i] for i in "ABCD"], name]) == column, name
    assert variables["rating.setting.mode"]["n_tied"] == 1
    assert variables["rating.calm.median_low"]["statistic"] == "median_low"
    refused = {v["name"]: v["reason"] for v in document["left_out"]}
    assert set(refused) == {"colour.warmth", "rating.depth", "rating.setting.adjudicated"}
    assert "no cut points" in refused["colour.warmth"] and "continuous" in refused["rating.depth"]
