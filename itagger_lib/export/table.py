"""The per-image table: image facts, science metrics with bins, and mean ratings, one row per image.

What a model or a paper's figures start from (``ws.table()``, ``table.<ext>`` of an
export). Metrics are read through :mod:`itagger_lib.science.results`, ratings through
:mod:`itagger_lib.ratings.frames`; the means leave repeated presentations out, as agreement
does (:func:`~itagger_lib.review.agreement.first_presentations`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from itagger_lib.db.arrow import read_arrow
from itagger_lib.ratings.frames import ratings_arrow
from itagger_lib.review.agreement import first_presentations, vlm_raters
from itagger_lib.science.results import metrics_frame

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = ["MEANS_COLUMNS", "per_image", "rating_means", "table"]

# The ratings' columns the per-image means need.
MEANS_COLUMNS = ("image_id", "attribute", "rater", "source", "value", "is_repeat", "repeat_index")


def rating_means(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per image: ``rating.<attribute>`` (mean of human/import first presentations, or the
    adjudicated value where one exists) and ``vlm.<attribute>`` (mean of VLM ratings)."""
    if ratings.empty:
        return pd.DataFrame()
    first = first_presentations(ratings)
    vlm = (first["source"] == "vlm") | vlm_raters(first["rater"])
    adjudicated = first[first["source"] == "adjudication"]
    people = first[~vlm & (first["source"] != "adjudication")]
    human = people.pivot_table(index="image_id", columns="attribute", values="value", aggfunc="mean")
    if not adjudicated.empty:
        decided = adjudicated.pivot_table(
            index="image_id", columns="attribute", values="value", aggfunc="last"
        )
        human = decided.combine_first(human)
    machine = first[vlm].pivot_table(index="image_id", columns="attribute", values="value", aggfunc="mean")
    return human.add_prefix("rating.").join(machine.add_prefix("vlm."), how="outer")


def table(
    ctx: Context, run: int | None = None, bins: bool = True, ratings: pa.Table | pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per image: image facts, science metrics (with bins) and mean ratings.

    Metrics come from :func:`itagger_lib.science.results.metrics_frame` (newest science run,
    or ``run``); ratings from :func:`rating_means` (``ratings`` when given, so an export
    reads them once). ``attrs`` holds the science run id.
    """
    metrics = metrics_frame(ctx, run=run, bins=bins)
    return per_image(ctx, metrics, ratings_arrow(ctx) if ratings is None else ratings)


def per_image(ctx: Context, metrics: pd.DataFrame, ratings: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """:func:`table` from the metrics frame and the ratings (at least :data:`MEANS_COLUMNS`)."""
    query = "SELECT id AS image_id, sha256, source_name, collection, width, height FROM images"
    if ctx.engine.dialect.name == "postgresql":
        text = pa.string()
        types = {"image_id": pa.int64(), "width": pa.int64(), "height": pa.int64()}
        types |= {"sha256": text, "source_name": text, "collection": text}
        images = read_arrow(ctx.engine, query, column_types=types).to_pandas().set_index("image_id")
    else:
        with ctx.engine.connect() as connection:
            images = pd.read_sql(sa.text(query), connection).set_index("image_id")
    if isinstance(ratings, pa.Table):
        ratings = ratings.select(list(MEANS_COLUMNS)).to_pandas()
    joined = images.join(metrics, how="left").join(rating_means(ratings), how="left")
    joined.attrs.update(metrics.attrs)
    return joined.sort_index()
