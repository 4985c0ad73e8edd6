"""The per-image table: image facts, science metrics with bins, and ratings summarised by level.

What a model or a paper's figures start from (``ws.table()``, ``table.<ext>`` of an
export). Metrics are read through :mod:`itagger_lib.science.results`, ratings through
:mod:`itagger_lib.ratings.frames`; repeated presentations are left out, as agreement does
(:func:`~itagger_lib.review.agreement.first_presentations`). Ratings become columns by each
attribute's level of measurement (:mod:`itagger_lib.ratings.aggregate`), each named for its
statistic:

* ``rating.<attribute>.<statistic>``: human and imported raters pooled (mode, shares and
  ties for nominal, per-label shares for multi-label, median for ordinal, mean and SD for
  interval, and ``n``);
* ``rating.<attribute>.adjudicated``: the adjudicated consensus, where there is one (kept
  apart: a consensus is not a statistic of the ratings);
* ``vlm.<attribute>.answer``: one VLM rater's answer from its primary run
  (:mod:`itagger_lib.vlm.primary`); ``attrs["vlm"]`` and an export's provenance name the
  rater and its runs.

``near_duplicate_group``: the image's near-duplicate group (pHash within the default
threshold, :func:`~itagger_lib.comparisons.phashes.near_duplicate_column`), missing for an
image whose hash is not stored yet.

``attrs["columns"]`` describes every rating column (source, attribute, type, level,
statistic).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from itagger_lib.codebook.storage import stored_attributes
from itagger_lib.comparisons.phashes import near_duplicate_column
from itagger_lib.db.arrow import read_arrow
from itagger_lib.errors import UnknownNameError
from itagger_lib.ratings.aggregate import aggregate, answers
from itagger_lib.ratings.frames import ratings_arrow
from itagger_lib.review.agreement import first_presentations, vlm_raters
from itagger_lib.science.results import metrics_frame
from itagger_lib.vlm.primary import select_primary

if TYPE_CHECKING:
    from collections.abc import Mapping

    from itagger_lib.codebook import Attribute
    from itagger_lib.context import Context

__all__ = ["RATING_COLUMNS", "per_image", "rating_columns", "table"]

# The ratings' columns the per-image values need.
RATING_COLUMNS = (
    "rating_id", "image_id", "attribute", "rater", "source", "value", "value_text",
    "is_repeat", "repeat_index", "run_id",
)  # fmt: skip


def rating_columns(
    ctx: Context,
    ratings: pd.DataFrame,
    attributes: Mapping[str, Attribute] | None = None,
    *,
    vlm_rater: str | None = None,
    ordinal: tuple[str, ...] = ("median",),
) -> pd.DataFrame:
    """Per image: ``rating.*`` (human and imported first presentations by level of
    measurement), ``rating.<attribute>.adjudicated`` and ``vlm.<attribute>.answer``.

    ``vlm_rater`` picks the VLM rater whose primary run fills the ``vlm.*`` columns
    (default: the rater whose primary run is the newest); ``attrs["vlm"]`` says which, with
    ``primary_run_id`` and the ``run_ids`` whose answers were used. ``ordinal``: the
    statistics of ordinal attributes (:func:`~itagger_lib.ratings.aggregate.aggregate`).
    """
    attributes = stored_attributes(ctx) if attributes is None else attributes
    if ratings.empty:
        frame = pd.DataFrame(index=pd.Index([], name="image_id"))
        frame.attrs.update({"columns": {}, "vlm": None})
        return frame
    first = first_presentations(ratings)
    machine = (first["source"] == "vlm") | vlm_raters(first["rater"])
    people = first[~machine & first["source"].isin(["human", "import"])]
    human = aggregate(people, attributes, prefix="rating", ordinal=ordinal)
    adjudicated = answers(first[first["source"] == "adjudication"], attributes, prefix="rating")
    adjudicated.columns = [str(c).removesuffix(".answer") + ".adjudicated" for c in adjudicated.columns]
    primary, used = select_primary(ctx, first[machine])
    vlm_frame, vlm_info = _vlm_columns(primary, used, attributes, vlm_rater)
    joined = human.join(adjudicated, how="outer").join(vlm_frame, how="outer")
    joined = joined[sorted(joined.columns, key=_column_order)]
    columns: dict[str, dict[str, Any]] = {**human.attrs["columns"], **vlm_frame.attrs.get("columns", {})}
    for column in adjudicated.columns:
        key = str(column).split(".")[1]
        columns[str(column)] = {
            "source": "rating", "attribute": key, "statistic": "adjudicated",
            "meaning": "the adjudicated consensus answer",
        }  # fmt: skip
    joined.attrs.update({"columns": {c: columns[c] for c in joined.columns if c in columns}, "vlm": vlm_info})
    return joined


def _column_order(column: str) -> tuple[int, str]:
    """``rating.*`` before ``vlm.*``, each attribute's columns together."""
    source, _, rest = str(column).partition(".")
    return (0 if source == "rating" else 1, rest.split(".")[0])


def _vlm_columns(
    primary: pd.DataFrame,
    used: dict[str, dict[str, Any]],
    attributes: Mapping[str, Attribute],
    vlm_rater: str | None,
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The ``vlm.*`` answers of one rater's primary run, and what names it."""
    if vlm_rater is not None and vlm_rater not in used:
        raise UnknownNameError(
            "VLM rater", [vlm_rater], used, hint="a VLM rater with a primary run; see ws.vlm_runs()"
        )
    if not used:
        return pd.DataFrame(index=pd.Index([], name="image_id")), None
    rater = vlm_rater or max(used, key=lambda name: (used[name]["primary_run_id"] or 0, name))
    mine = primary[primary["rater"] == rater]
    info = {"rater": rater, **used[rater], "other_raters": sorted(set(used) - {rater})}
    return answers(mine, attributes, prefix="vlm"), info


def table(
    ctx: Context,
    run: int | None = None,
    bins: bool = True,
    ratings: pa.Table | pd.DataFrame | None = None,
    *,
    vlm_rater: str | None = None,
    ordinal_mean: bool = False,
) -> pd.DataFrame:
    """One row per image: image facts, science metrics (with bins) and ratings by level.

    Metrics come from :func:`itagger_lib.science.results.metrics_frame` (newest science run,
    or ``run``); ratings from :func:`rating_columns` (``ratings`` when given, so an export
    reads them once; ``vlm_rater`` picks the VLM, ``ordinal_mean`` adds the labelled
    ``mean_as_interval`` of ordinal attributes). ``attrs`` holds the science run id, the
    rating columns' descriptions (``columns``) and the VLM rater and runs (``vlm``).
    """
    metrics = metrics_frame(ctx, run=run, bins=bins)
    return per_image(
        ctx,
        metrics,
        ratings_arrow(ctx) if ratings is None else ratings,
        vlm_rater=vlm_rater,
        ordinal_mean=ordinal_mean,
    )


def per_image(
    ctx: Context,
    metrics: pd.DataFrame,
    ratings: pa.Table | pd.DataFrame,
    *,
    vlm_rater: str | None = None,
    ordinal_mean: bool = False,
) -> pd.DataFrame:
    """:func:`table` from the metrics frame and the ratings (at least :data:`RATING_COLUMNS`)."""
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
        ratings = ratings.select(list(RATING_COLUMNS)).to_pandas()
    ordinal = ("median", "mean_as_interval") if ordinal_mean else ("median",)
    rated = rating_columns(ctx, ratings, vlm_rater=vlm_rater, ordinal=ordinal)
    joined = (
        images.join(near_duplicate_column(ctx), how="left").join(metrics, how="left").join(rated, how="left")
    )
    for column in rated.columns:  # an image nobody rated: n = 0, every statistic missing
        if str(column).endswith(".n"):
            joined[column] = joined[column].fillna(0).astype("int64")
    joined.attrs.update(metrics.attrs)
    joined.attrs.update(rated.attrs)
    return joined.sort_index()
