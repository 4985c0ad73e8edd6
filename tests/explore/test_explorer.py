"""Explorer queries and widgets, Inspector, adjudication — on SQLite and Postgres."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib import browse, image_sets
from itagger_lib.db.models import Image, Rating, utcnow
from itagger_lib.errors import ConfigError
from itagger_lib.ratings import frames
from itagger_lib.review import adjudication
from itagger_lib.science import results
from itagger_lib.science.results import metric_values


@pytest.fixture
def scienced(workspace, sample_dir: Path):  # type: ignore[no-untyped-def]
    workspace.ingest(sample_dir, progress=False)
    with ThreadPoolExecutor(2) as pool:
        workspace.run_science(executor=pool, progress=False)
    return workspace


def _add_ratings(ws, rows: list[tuple[int, str, str, str, float]]) -> None:  # type: ignore[no-untyped-def]
    codebook_id = ws.load_codebook().id
    with ws.engine.begin() as connection:
        connection.execute(
            sa.insert(Rating),
            [
                {
                    "image_id": i,
                    "attribute": a,
                    "rater": r,
                    "source": s,
                    "value": v,
                    "codebook_id": codebook_id,
                    "rated_at": utcnow(),
                }
                for i, a, r, s, v in rows
            ],
        )


def test_filter_sort_page_match_pandas(scienced) -> None:
    ws = scienced
    metrics = ws.metrics()
    key = "complexity.edge_density"
    low = float(metrics[key].median())
    frame, total = browse.page(
        ws, browse.Query(metric_ranges={key: (low, None)}, sort=key, descending=True, page_size=4)
    )
    expected = metrics[metrics[key] >= low].sort_values(key, ascending=False)
    assert total == len(expected)
    assert list(frame["id"]) == list(expected.index[:4])
    second, _ = browse.page(
        ws, browse.Query(metric_ranges={key: (low, None)}, sort=key, descending=True, page_size=4, page=1)
    )
    assert list(second["id"]) == list(expected.index[4:8])


def test_sorting_by_a_filtered_key_matches_pandas(scienced) -> None:
    """Sort keys that are also filters (a bin, a rating range) reuse the filter's join."""
    ws = scienced
    binned = ws.metrics(bins=True)
    key = "fractal.dimension"
    frame, total = browse.page(ws, browse.Query(bins={key: "high"}, sort=key, page_size=100))
    expected = binned[binned[f"bin.{key}"] == "high"].sort_values(key)
    assert total == len(expected) and list(frame["id"]) == list(expected.index)
    ids = list(binned.index)
    _add_ratings(
        ws,
        [
            (i, a, r, "human", float((i * 3 + j + k) % 7 + 1))
            for i in ids
            for j, a in enumerate(["order", "warmth"])
            for k, r in enumerate("ab")
        ],
    )
    means = {a: frames.mean_ratings(ws, a) for a in ("order", "warmth")}
    for sort in ("order", "warmth"):
        query = browse.Query(
            rating_ranges={"order": (3.0, 6.0)}, sort=f"rating:{sort}", descending=True, page_size=100
        )
        frame, total = browse.page(ws, query)
        chosen = means["order"][(means["order"] >= 3.0) & (means["order"] <= 6.0)].index
        reference = pd.DataFrame({"mean": means[sort][chosen], "id": chosen}).sort_values(
            ["mean", "id"], ascending=False
        )
        assert total == len(chosen) and list(frame["id"]) == list(reference["id"]), sort
        assert list(frame["sort_value"]) == pytest.approx(list(reference["mean"]))


def test_bins_use_the_stored_cut_points(scienced) -> None:
    ws = scienced
    binned = ws.metrics(bins=True)
    key = "colour_areas.green_share"
    for label in ("low", "mid", "high"):
        _, total = browse.page(ws, browse.Query(bins={key: label}))
        assert total == int((binned[f"bin.{key}"] == label).sum()), label
    with pytest.raises(ConfigError, match="low"):
        browse.page(ws, browse.Query(bins={key: "medium"}))


def test_percentiles(scienced) -> None:
    ws = scienced
    metrics = ws.metrics(composites=False)
    table = results.percentiles(ws, 1)
    key = "colour.colourfulness"
    expected = 100.0 * (metrics[key] <= metrics.loc[1, key]).mean()
    assert table.loc[key, "percentile"] == pytest.approx(expected)


def test_explorer_widget_actions(scienced) -> None:
    from itagger_lib.widgets.explorer import Explorer

    ws = scienced
    _add_ratings(
        ws,
        [
            (i, "pleasantness", f"r{j}", "human", float((i + j) % 7 + 1))
            for i in range(1, 13)
            for j in range(3)
        ],
    )
    explorer = Explorer(ws, page_size=5)
    assert explorer.total == 12 and explorer.pages == 3 and len(explorer.grid.children) == 5
    explorer.next_page()
    explorer.next_page()
    explorer.next_page()  # stays on the last page
    assert explorer.query.page == 2 and len(explorer.grid.children) == 2
    explorer.set_sort("rating:pleasantness", descending=True)
    assert explorer.rows is not None and explorer.rows["sort_value"].is_monotonic_decreasing
    explorer.add_rating_filter("pleasantness", 4.0, None)
    assert all(v >= 4.0 for v in explorer.rows["sort_value"])
    explorer.clear_filters()
    explorer.add_filter("fractal.dimension", bin="high")
    assert 0 < explorer.total < 12
    explorer.clear_filters()
    checkbox = explorer.grid.children[0].children[1]
    checkbox.value = True
    explorer.select([2, 3])
    assert explorer.save_selection("favourites") == 3
    assert image_sets.image_sets(ws)["favourites"] == sorted(explorer.selected)
    table = explorer.comparison()
    assert table.shape[1] == 3 and "fractal.dimension" in table.index
    names = ws.images()["source_name"]
    tile = explorer.grid.children[0].children
    assert names[int(explorer.rows["id"].iloc[0])] in tile[2].value  # the file name under it
    low, high = explorer.filter_low.value, explorer.filter_high.value  # the observed range
    values = metric_values(ws, [explorer.filter_metric.value]).iloc[:, 0]
    assert low <= values.min() < values.max() <= high  # the observed range, rounded outwards
    assert (low, high) == pytest.approx((values.min(), values.max()), rel=1e-2)
    explorer.filter_metric.value = "fractal.dimension"
    values = metric_values(ws, ["fractal.dimension"]).iloc[:, 0]
    assert explorer.filter_low.value <= values.min() < values.max() <= explorer.filter_high.value
    assert [explorer.comparison_label(i) for i in table.columns] == [
        f"#{i} {names[i]}" for i in sorted(explorer.selected)
    ]
    data, pearson, spearman = explorer.scatter_data("complexity.edge_density", "pleasantness")
    assert len(data) == 12 and list(data.columns) == ["complexity.edge_density", "pleasantness.median"]
    # pleasantness is ordinal: Spearman's rho of the medians, no Pearson r
    ranks = data.rank()
    assert spearman == pytest.approx(np.corrcoef(ranks.iloc[:, 0], ranks.iloc[:, 1])[0, 1])
    assert np.isnan(pearson)


def test_inspector_and_adjudication(scienced) -> None:
    from itagger_lib.widgets.inspector import Inspector, overlay

    ws = scienced
    _add_ratings(
        ws,
        [
            (1, "order", "a", "human", 1.0),
            (1, "order", "b", "human", 7.0),
            (2, "order", "a", "human", 4.0),
            (2, "order", "b", "human", 4.0),
            (2, "order", "vlm:stub/stub", "vlm", 7.0),
        ],
    )
    inspector = Inspector(ws, 1)
    assert inspector.picture.value[:2] == b"\xff\xd8"
    assert len(inspector.metrics) > 20 and set(inspector.ratings["rater"]) == {"a", "b"}
    inspector.overlay.value = "edges"
    inspector.overlay.value = "complexity"
    rgb = np.zeros((40, 40, 3), np.uint8)
    rgb[10:30, 10:30] = 255
    assert (overlay(rgb, "edges")[..., 0] == 255).any()

    contested = adjudication.queue(ws)
    assert list(contested["image_id"])[:2] == [1, 2]
    conflict = adjudication.queue(ws, by="vlm_conflict")
    assert list(conflict["image_id"]) == [2] and conflict["conflict"].iloc[0] == 3.0
    rating_id = adjudication.adjudicate(ws, 1, "order", 4.0, note="discussed")
    assert adjudication.adjudicate(ws, 1, "order", 5.0) == rating_id
    with ws.engine.connect() as connection:
        row = connection.execute(sa.select(Rating).where(Rating.id == rating_id)).one()
    assert row.source == "adjudication" and row.rater == "tester" and row.value == 5.0
    assert 1 not in set(adjudication.queue(ws)["image_id"])
    from itagger_lib.errors import RatingError

    with pytest.raises(RatingError, match="order"):
        adjudication.adjudicate(ws, 2, "order", 9.0)


def test_counts_match_pandas_for_every_kind_of_filter_and_sort(scienced) -> None:
    """The count (counted without the images table when no image column is filtered) equals
    the listed images, including images that lack the sort key's metric or rating."""
    ws = scienced
    metrics = ws.metrics()
    ids = list(metrics.index)
    rated = ids[: len(ids) // 2]  # only half the images have ratings of "order"
    _add_ratings(
        ws, [(i, "order", r, "human", float((i + k) % 7 + 1)) for i in rated for k, r in enumerate("ab")]
    )
    with ws.engine.begin() as connection:  # one image loses its fractal dimension
        connection.exec_driver_sql(
            f"DELETE FROM metrics WHERE image_id = {ids[-1]} AND key = 'fractal.dimension'"
        )
    metrics = ws.metrics()
    means = frames.mean_ratings(ws, "order")
    a, b = "colour.colourfulness", "complexity.edge_density"
    cut_a, cut_b = float(metrics[a].median()), float(metrics[b].quantile(0.75))
    collection = "facades"
    with ws.engine.begin() as connection:  # a third of the images in a collection
        connection.execute(sa.update(Image).where(Image.id % 3 == 0).values(collection="facades"))
    image_sets.save_set(ws, "evens", ids[::2])
    cases = {
        "sort by a metric": (browse.Query(sort="fractal.dimension"), metrics["fractal.dimension"].notna()),
        "sort by a rating": (browse.Query(sort="rating:order"), metrics.index.isin(means.dropna().index)),
        "two ranges": (
            browse.Query(metric_ranges={a: (cut_a, None), b: (None, cut_b)}, sort="fractal.dimension"),
            (metrics[a] >= cut_a) & (metrics[b] <= cut_b) & metrics["fractal.dimension"].notna(),
        ),
        "range + rating range": (
            browse.Query(metric_ranges={a: (cut_a, None)}, rating_ranges={"order": (2.0, 6.0)}),
            (metrics[a] >= cut_a) & metrics.index.isin(means[(means >= 2.0) & (means <= 6.0)].index),
        ),
        "range + image set": (
            browse.Query(metric_ranges={a: (cut_a, None)}, sort="rating:order", image_set="evens"),
            (metrics[a] >= cut_a) & metrics.index.isin(ids[::2]) & metrics.index.isin(means.dropna().index),
        ),
        "range + collection": (
            browse.Query(metric_ranges={a: (cut_a, None)}, collection=collection),
            (metrics[a] >= cut_a) & (metrics.index.to_series() % 3 == 0),
        ),
    }
    for name, (query, expected) in cases.items():
        frame, total = browse.page(ws, query.__class__(**{**query.__dict__, "page_size": 100}))
        assert total == int(np.sum(expected)) == len(frame), name


def test_the_plots_show_the_filtered_images(scienced) -> None:
    """The histogram and the scatter plot count the images the filters keep, not all of them."""
    ws = scienced
    metrics = ws.metrics()
    key = "complexity.edge_density"
    _add_ratings(
        ws,
        [(i, "order", r, "human", float((i + k) % 7 + 1)) for i in metrics.index for k, r in enumerate("ab")],
    )
    from itagger_lib.widgets.explorer import Explorer

    explorer = Explorer(ws)
    cut = float(metrics[key].sort_values().iloc[-4])  # the four highest
    explorer.add_filter(key, cut, None)
    assert explorer.total == 4
    kept = sorted(metrics.index[metrics[key] >= cut])
    assert sorted(explorer.filtered_ids()) == kept
    histogram = explorer.histogram_data(key)
    assert len(histogram) == explorer.total and sorted(histogram.index) == kept
    data, _, spearman = explorer.scatter_data(key, "order")
    assert len(data) == explorer.total and sorted(data.index) == kept
    expected = metrics.loc[kept, key].corr(frames.image_statistic(ws, "order")[kept], method="spearman")
    assert spearman == pytest.approx(expected)
    explorer.plot_metric.value, explorer.plot_attribute.value = key, "order"
    explorer._show_plot()
    assert explorer.plot_title.endswith("n = 4 of 4 filtered images")
    explorer.clear_filters()
    assert len(explorer.histogram_data(key)) == len(metrics) == explorer.total
    explorer.plot_attribute.value = ""
    explorer._show_plot()
    assert explorer.plot_title == f"n = {len(metrics)} of {len(metrics)} filtered images"
