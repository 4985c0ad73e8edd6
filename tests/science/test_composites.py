"""Composite indices, tertile cut points and low/mid/high bins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from itagger_lib.errors import ScienceError
from itagger_lib.science import (
    COMPOSITES,
    assign_bins,
    compute_composites,
    compute_cut_points,
    metric_keys,
    standardisation_stats,
    tertile_cut_points,
)


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    keys = metric_keys()
    return pd.DataFrame(
        rng.normal(size=(30, len(keys))), columns=keys, index=pd.RangeIndex(1, 31, name="image_id")
    )


def test_composites_are_means_of_signed_z_scores(table):
    out = compute_composites(table)
    assert list(out.columns) == list(COMPOSITES)
    parts = COMPOSITES["composite.organised_complexity"]
    z = [(table[m] - table[m].mean()) / table[m].std(ddof=0) * s for m, s in parts]
    expected = pd.concat(z, axis=1).mean(axis=1)
    pd.testing.assert_series_equal(out["composite.organised_complexity"], expected, check_names=False)
    assert out.mean().abs().max() < 1e-12


def test_stored_stats_reproduce_composites(table):
    needed = sorted({m for parts in COMPOSITES.values() for m, _ in parts})
    stats = json.loads(json.dumps(standardisation_stats(table, needed)))
    pd.testing.assert_frame_equal(compute_composites(table, stats=stats), compute_composites(table))
    subset = table.iloc[:5]
    pd.testing.assert_frame_equal(compute_composites(subset, stats=stats), compute_composites(table).iloc[:5])


def test_constant_component_and_missing_values(table):
    table["colour.colourfulness"] = 3.0
    table.loc[2, "fractal.dimension"] = np.nan
    out = compute_composites(table)
    assert np.isnan(out.loc[2, "composite.visual_richness"])
    assert out["composite.visual_richness"].drop(2).notna().all()


def test_missing_metric_is_named(table):
    with pytest.raises(ScienceError, match=r"'colour_areas\.top_blue_grey_share'"):
        compute_composites(table.drop(columns=["colour_areas.top_blue_grey_share"]))


def test_tertiles_split_into_thirds():
    series = pd.Series(np.arange(1.0, 10.0), name="x")
    low, high = tertile_cut_points(series)
    assert (low, high) == pytest.approx((11 / 3, 19 / 3))
    bins = assign_bins(series.to_frame(), {"x": (low, high)})["x"]
    assert bins.tolist() == ["low"] * 3 + ["mid"] * 3 + ["high"] * 3
    assert bins.cat.ordered and list(bins.cat.categories) == ["low", "mid", "high"]


def test_cut_points_are_json_and_fixed_points_are_validated(table):
    cut_points = compute_cut_points(table, ["complexity.edge_density", "fractal.dimension"])
    assert json.loads(json.dumps(cut_points)) == cut_points
    bins = assign_bins(table, cut_points)
    counts = bins["fractal.dimension"].value_counts()
    assert counts.to_dict() == {"low": 10, "mid": 10, "high": 10}
    fixed = compute_cut_points(table, ["fractal.dimension"], {"fractal.dimension": [0, 0.5]})
    assert fixed == {"fractal.dimension": [0.0, 0.5]}
    edges = pd.DataFrame({"fractal.dimension": [0.0, 0.2, 0.5, 0.7, np.nan]})
    assert assign_bins(edges, fixed)["fractal.dimension"].tolist() == [
        "low",
        "mid",
        "mid",
        "high",
        np.nan,
    ]
    with pytest.raises(ScienceError, match="low <= high"):
        compute_cut_points(table, ["fractal.dimension"], {"fractal.dimension": [2, 1]})
    with pytest.raises(ScienceError, match=r"lack column 'fractal\.r2'"):
        compute_cut_points(table, ["fractal.r2"], {"fractal.dimension": [0, 1]})
    with pytest.raises(ScienceError, match="unknown cut-point method"):
        compute_cut_points(table, ["fractal.r2"], "quartiles")
