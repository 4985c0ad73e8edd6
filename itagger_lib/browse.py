"""Browsing the collection: filter, sort and page images by metrics, mean ratings and bins.

The queries behind the explorer. Everything runs in the database (joins on the long
``metrics`` table through its ``(params_hash, key, value)`` index, ``LIMIT``/``OFFSET``
paging), so a page costs the same on 100 images or 100 000. The science run whose values
and cut points are used comes from :mod:`itagger_lib.science.results`; named sets of images
from :mod:`itagger_lib.image_sets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.models import Image, Metric, RatingMean
from itagger_lib.errors import ArgumentError
from itagger_lib.image_sets import members
from itagger_lib.science.results import latest_science_run

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.context import Context

__all__ = ["Query", "page"]


@dataclass
class Query:
    """What to show: filters, order and page.

    ``metric_ranges`` maps a metric key to ``(low, high)`` (either may be ``None``);
    ``rating_ranges`` maps an attribute to ``(low, high)`` on the image's mean rating;
    ``bins`` maps a metric key to ``"low" | "mid" | "high"`` using the run's stored cut points;
    ``sort`` is a metric key, ``"rating:<attribute>"``, or an image column (``id``,
    ``ingested_at``, ``bytes``). Sorting by a metric or a mean rating lists only the images
    that have one (the database walks an index in order and stops after one page).
    """

    metric_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    rating_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    bins: dict[str, str] = field(default_factory=dict)
    collection: str | None = None
    image_set: str | None = None
    sort: str = "id"
    descending: bool = False
    page: int = 0
    page_size: int = 24


def _range(column: Any, bounds: tuple[float | None, float | None]) -> list[Any]:
    low, high = bounds
    clauses = []
    if low is not None:
        clauses.append(column >= low)
    if high is not None:
        clauses.append(column <= high)
    return clauses


def _mean_ratings(attribute: str, name: str) -> Any:
    """``rating_means`` rows of ``attribute`` (kept by triggers on ``ratings``), aliased."""
    alias = sa.orm.aliased(RatingMean, name=name)
    return alias, alias.attribute == attribute


def _bin_bounds(
    cut_points: Mapping[str, Sequence[float]], key: str, label: str
) -> tuple[float | None, float | None]:
    if key not in cut_points:
        raise ArgumentError(
            f"no cut points for metric {key!r} in the science run; run ws.run_science() first"
        )
    low, high = cut_points[key]
    bounds = {"low": (None, low), "mid": (low, high), "high": (high, None)}
    if label not in bounds:
        raise ArgumentError(f"bin {label!r} for {key!r}: use 'low', 'mid' or 'high'")
    return bounds[label]


def _filtered(
    query: Query, params_hash: str | None, cut_points: Mapping[str, Any]
) -> tuple[Any, dict[str, Any], dict[str, Any], list[tuple[Any, list[Any]]]]:
    """The filtered (unordered, unpaged) ``SELECT images.id …`` for ``query``, its joined
    aliases by metric key and by attribute, and every joined alias with its conditions
    besides the link to ``images.id``."""
    statement = sa.select(
        Image.id, Image.sha256, Image.ext, Image.width, Image.height, Image.source_name, Image.collection
    )
    ranges = dict(query.metric_ranges)
    for key, label in query.bins.items():
        low, high = _bin_bounds(cut_points, key, label)
        # Bins are half-open like assign_bins: low ≤ cut1 < mid ≤ cut2 < high.
        ranges[f"{key}#bin"] = (low, high)
    metrics: dict[str, Any] = {}
    joins: list[tuple[Any, list[Any]]] = []
    for index, (key, bounds) in enumerate(ranges.items()):
        metric_key = key.split("#", 1)[0]
        alias = sa.orm.aliased(Metric, name=f"m{index}")
        conditions = [alias.params_hash == params_hash, alias.key == metric_key, *_range(alias.value, bounds)]
        statement = statement.join(alias, sa.and_(alias.image_id == Image.id, *conditions))
        joins.append((alias, conditions))
        metrics.setdefault(metric_key, alias)
    ratings: dict[str, Any] = {}
    for index, (attribute, bounds) in enumerate(query.rating_ranges.items()):
        means, same_attribute = _mean_ratings(attribute, f"r{index}")
        conditions = [same_attribute, *_range(means.mean, bounds)]
        statement = statement.join(means, sa.and_(means.image_id == Image.id, *conditions))
        joins.append((means, conditions))
        ratings[attribute] = means
    if query.collection:
        statement = statement.where(Image.collection == query.collection)
    if query.image_set:
        statement = statement.where(Image.id.in_(members(query.image_set)))
    return statement, metrics, ratings, joins


def _count_select(query: Query, joins: list[tuple[Any, list[Any]]], statement: Any) -> Any:
    """``SELECT count(*)`` of the images ``statement`` lists, without joining every image.

    Every ``metrics`` and ``rating_means`` row references an existing image (a foreign key
    with ``ON DELETE CASCADE``), so the joined rows can be counted among themselves, on their
    indexes, with a collection or a set as a semi-join on those images only: joining every
    image costs as much again at 100k images.
    """
    if not joins:
        return sa.select(sa.func.count()).select_from(statement.subquery())
    (base, base_conditions), rest = joins[0], joins[1:]
    counted = sa.select(sa.func.count()).select_from(base).where(*base_conditions)
    for alias, conditions in rest:
        counted = counted.join(alias, sa.and_(alias.image_id == base.image_id, *conditions))
    if query.collection:  # a semi-join on the images of the collection only
        counted = counted.where(
            base.image_id.in_(sa.select(Image.id).where(Image.collection == query.collection))
        )
    if query.image_set:
        counted = counted.where(base.image_id.in_(members(query.image_set)))
    return counted


def page(ctx: Context, query: Query, *, count: bool = True) -> tuple[pd.DataFrame, int | None]:
    """One page of images matching ``query`` (and the total count, unless ``count=False``).

    The count costs a pass over every matching image; a page turn with the same filters can
    reuse it (the explorer does). Sorting by a metric or mean rating that is also filtered
    on reuses the filter's join (one row per image and key), so the database walks one index.
    """
    run = latest_science_run(ctx)
    params_hash = run["params_hash"] if run else None
    cut_points = (run or {}).get("details", {}).get("cut_points", {}) if run else {}
    statement, metrics, ratings, joins = _filtered(query, params_hash, cut_points)
    sort_column: Any
    if query.sort in {"id", "ingested_at", "bytes", "width", "height", "source_name"}:
        sort_column = getattr(Image, query.sort)
    elif query.sort.startswith("rating:"):
        # As with metrics, an inner join walks the (attribute, mean, image_id) index in order
        # and stops after one page; images without a rating of this attribute are not listed.
        attribute = query.sort.split(":", 1)[1]
        means = ratings.get(attribute)
        if means is None:
            means, same_attribute = _mean_ratings(attribute, "sort_rating")
            statement = statement.join(means, sa.and_(means.image_id == Image.id, same_attribute))
            joins.append((means, [same_attribute]))
        statement = statement.where(means.mean.is_not(None))
        joins = [(a, [*c, means.mean.is_not(None)] if a is means else c) for a, c in joins]
        statement = statement.add_columns(means.mean.label("sort_value"))
        order = means.mean.desc() if query.descending else means.mean.asc()
        tie = means.image_id.desc() if query.descending else means.image_id.asc()
        return _fetch(ctx, statement, statement.order_by(order, tie), query, count, joins)
    else:
        # An inner join lets the database walk the (params_hash, key, value, image_id) index
        # in order and stop after one page; images without this metric are not listed.
        sort_metric = metrics.get(query.sort)
        if sort_metric is None:
            sort_metric = sa.orm.aliased(Metric, name="sort_metric")
            conditions = [sort_metric.params_hash == params_hash, sort_metric.key == query.sort]
            statement = statement.join(sort_metric, sa.and_(sort_metric.image_id == Image.id, *conditions))
            joins.append((sort_metric, conditions))
        statement = statement.add_columns(sort_metric.value.label("sort_value"))
        order = sort_metric.value.desc() if query.descending else sort_metric.value.asc()
        tie = sort_metric.image_id.desc() if query.descending else sort_metric.image_id.asc()
        return _fetch(ctx, statement, statement.order_by(order, tie), query, count, joins)
    order = sort_column.desc() if query.descending else sort_column.asc()
    return _fetch(ctx, statement, statement.order_by(order.nulls_last(), Image.id), query, count, joins)


def _fetch(
    ctx: Context,
    statement: Any,
    ordered: Any,
    query: Query,
    count: bool,
    joins: list[tuple[Any, list[Any]]],
) -> tuple[pd.DataFrame, int | None]:
    import pandas as pd

    paged = ordered.limit(query.page_size).offset(max(0, query.page) * query.page_size)
    with ctx.engine.connect() as connection:
        frame = pd.read_sql(paged, connection)
        total = None
        if count:
            total = connection.execute(_count_select(query, joins, statement)).scalar_one()
    return frame, total
