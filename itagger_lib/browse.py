"""Browsing the collection: filter, sort and page images by metrics, ratings and bins.

The queries behind the explorer. Everything runs in the database (joins on the long
``metrics`` table through its ``(params_hash, key, value)`` index, ``LIMIT``/``OFFSET``
paging), so a page costs the same on 100 images or 100 000. The science run whose values
and cut points are used comes from :mod:`itagger_lib.science.results`; named sets of images
from :mod:`itagger_lib.image_sets`.

An image's ratings of an attribute are one value of its level of measurement, kept in
``rating_means`` (:mod:`itagger_lib.ratings.aggregate`): ranges and sorts use the median of
an ordinal attribute and the mean of an interval one; a nominal attribute is filtered by its
modal category (``rating_modes``) and cannot be sorted by. :func:`matching_ids` lists every
image the filters keep (what the explorer plots). A filter naming a metric or attribute the
workspace does not have raises :class:`~itagger_lib.errors.UnknownNameError`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.codebook.storage import stored_attributes
from itagger_lib.db.models import Image, Metric, RatingMean
from itagger_lib.errors import ArgumentError, UnknownNameError
from itagger_lib.image_sets import members
from itagger_lib.ratings.aggregate import level_of, statistic_of
from itagger_lib.ratings.frames import rated_attributes
from itagger_lib.science.names import stored_key
from itagger_lib.science.results import latest_science_run

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.codebook import Attribute
    from itagger_lib.context import Context

__all__ = ["Query", "matching_ids", "page"]


@dataclass
class Query:
    """What to show: filters, order and page.

    ``metric_ranges`` maps a metric key to ``(low, high)`` (either may be ``None``);
    ``rating_ranges`` maps an ordinal or interval attribute to ``(low, high)`` on the image's
    median (ordinal) or mean (interval) rating; ``rating_modes`` maps a nominal attribute to
    a category (images whose modal category it is; images whose categories tie have none);
    ``bins`` maps a metric key to ``"low" | "mid" | "high"`` using the run's stored cut points;
    ``sort`` is a metric key, ``"rating:<attribute>"`` (ordinal or interval), or an image
    column (``id``, ``ingested_at``, ``bytes``). Sorting by a metric or a rating lists only
    the images that have one (the database walks an index in order and stops after one page).
    """

    metric_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    rating_ranges: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    rating_modes: dict[str, int | str] = field(default_factory=dict)
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


def _rating_values(attribute: str, name: str) -> Any:
    """``rating_means`` rows of ``attribute`` (kept by triggers on ``ratings``), aliased."""
    alias = sa.orm.aliased(RatingMean, name=name)
    return alias, alias.attribute == attribute


def _statistic(attributes: Mapping[str, Attribute], rated: set[str], attribute: str, use: str) -> str:
    """The ``rating_means`` column that stands for ``attribute`` where it is used for ``use``
    (``range``, ``sort``, ``mode``): median (ordinal), mean (interval) or mode (nominal)."""
    if attribute not in attributes and attribute not in rated:
        raise UnknownNameError("attribute", [attribute], set(attributes) | rated)
    definition = attributes.get(attribute)
    statistic = statistic_of(definition)
    level = level_of(definition)
    if statistic == "share":
        raise ArgumentError(
            f"attribute {attribute!r} is multi-label: the explorer cannot filter or sort by it"
        )
    if use == "mode" and statistic != "mode":
        raise ArgumentError(
            f"attribute {attribute!r} is {level}: filter it by a range (rating_ranges), not a category"
        )
    if use != "mode" and statistic == "mode":
        raise ArgumentError(
            f"attribute {attribute!r} is nominal: its categories have no order to "
            f"{'sort' if use == 'sort' else 'take a range'} by; filter by its modal category "
            "(rating_modes) instead"
        )
    return statistic


def _code(attribute: Attribute | None, category: int | str) -> float:
    """The stored code of a nominal category: a numeric level is its value, a text level its
    index in the codebook (as ratings store it)."""
    if attribute is None:
        return float(category)
    for index, value in enumerate(attribute.values):
        if value == category or str(value) == str(category):
            return float(value) if isinstance(value, int) else float(index)
    raise UnknownNameError(f"category of {attribute.key!r}", [category], attribute.values)


def _stored_names(query: Query, stored: Mapping[str, Any]) -> Query:
    """``query`` with its metric keys as the run stores them (old names for results written
    before a rename; :mod:`itagger_lib.science.names`)."""
    rename = functools.partial(stored_key, stored=stored)
    sort = (
        query.sort if query.sort in _IMAGE_COLUMNS or query.sort.startswith("rating:") else rename(query.sort)
    )
    return dataclasses.replace(
        query,
        metric_ranges={rename(k): v for k, v in query.metric_ranges.items()},
        bins={rename(k): v for k, v in query.bins.items()},
        sort=sort,
    )


def _check_metrics(ctx: Context, query: Query, params_hash: str | None, binned: set[str]) -> None:
    """:class:`UnknownNameError` for a metric the science run does not have. Every metric a
    run computed has cut points (``binned``), so the run's keys are read only to confirm."""
    wanted = [*query.metric_ranges, *query.bins]
    if query.sort not in _IMAGE_COLUMNS and not query.sort.startswith("rating:"):
        wanted.append(query.sort)
    if params_hash is None or all(key in binned for key in wanted):
        return
    with ctx.engine.connect() as connection:
        known = set(
            connection.execute(
                sa.select(Metric.key).where(Metric.params_hash == params_hash).distinct()
            ).scalars()
        )
    unknown = [key for key in wanted if key not in known]
    if unknown:
        raise UnknownNameError("metric", unknown, known)


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
    query: Query,
    params_hash: str | None,
    cut_points: Mapping[str, Any],
    attributes: Mapping[str, Attribute],
    rated: set[str],
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
        statistic = _statistic(attributes, rated, attribute, "range")
        values, same_attribute = _rating_values(attribute, f"r{index}")
        conditions = [same_attribute, *_range(getattr(values, statistic), bounds)]
        statement = statement.join(values, sa.and_(values.image_id == Image.id, *conditions))
        joins.append((values, conditions))
        ratings[attribute] = values
    for index, (attribute, category) in enumerate(query.rating_modes.items()):
        _statistic(attributes, rated, attribute, "mode")
        values, same_attribute = _rating_values(attribute, f"c{index}")
        conditions = [same_attribute, values.mode == _code(attributes.get(attribute), category)]
        statement = statement.join(values, sa.and_(values.image_id == Image.id, *conditions))
        joins.append((values, conditions))
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


_IMAGE_COLUMNS = frozenset({"id", "ingested_at", "bytes", "width", "height", "source_name"})


def _statement(ctx: Context, query: Query) -> tuple[Any, list[tuple[Any, list[Any]]], list[Any]]:
    """``query`` as a filtered ``SELECT`` (with a ``sort_value`` column when sorting by a
    metric or rating), its joins, and its ``ORDER BY``."""
    run = latest_science_run(ctx)
    params_hash = run["params_hash"] if run else None
    stored = (run or {}).get("details", {}).get("cut_points", {}) if run else {}
    query = _stored_names(query, stored)
    _check_metrics(ctx, query, params_hash, set(stored))
    attributes: dict[str, Attribute] = {}
    rated: set[str] = set()
    if query.rating_ranges or query.rating_modes or query.sort.startswith("rating:"):
        attributes, rated = stored_attributes(ctx), set(rated_attributes(ctx))
    statement, metrics, ratings, joins = _filtered(query, params_hash, stored, attributes, rated)
    if query.sort in _IMAGE_COLUMNS:
        column = getattr(Image, query.sort)
        return (
            statement,
            joins,
            [(column.desc() if query.descending else column.asc()).nulls_last(), Image.id],
        )
    if query.sort.startswith("rating:"):
        # As with metrics, an inner join walks the (attribute, <statistic>, image_id) index in
        # order and stops after one page; images without a rating of this attribute are not listed.
        attribute = query.sort.split(":", 1)[1]
        statistic = _statistic(attributes, rated, attribute, "sort")
        values = ratings.get(attribute)
        if values is None:
            values, same_attribute = _rating_values(attribute, "sort_rating")
            statement = statement.join(values, sa.and_(values.image_id == Image.id, same_attribute))
            joins.append((values, [same_attribute]))
        sorted_by = getattr(values, statistic)
        statement = statement.where(sorted_by.is_not(None))
        joins = [(a, [*c, sorted_by.is_not(None)] if a is values else c) for a, c in joins]
        tie = values.image_id
    else:
        # An inner join lets the database walk the (params_hash, key, value, image_id) index
        # in order and stop after one page; images without this metric are not listed.
        sort_metric = metrics.get(query.sort)
        if sort_metric is None:
            sort_metric = sa.orm.aliased(Metric, name="sort_metric")
            conditions = [sort_metric.params_hash == params_hash, sort_metric.key == query.sort]
            statement = statement.join(sort_metric, sa.and_(sort_metric.image_id == Image.id, *conditions))
            joins.append((sort_metric, conditions))
        sorted_by, tie = sort_metric.value, sort_metric.image_id
    statement = statement.add_columns(sorted_by.label("sort_value"))
    if query.descending:
        return statement, joins, [sorted_by.desc(), tie.desc()]
    return statement, joins, [sorted_by.asc(), tie.asc()]


def page(ctx: Context, query: Query, *, count: bool = True) -> tuple[pd.DataFrame, int | None]:
    """One page of images matching ``query`` (and the total count, unless ``count=False``).

    The count costs a pass over every matching image; a page turn with the same filters can
    reuse it (the explorer does). Sorting by a metric or rating that is also filtered on
    reuses the filter's join (one row per image and key), so the database walks one index.
    """
    statement, joins, order = _statement(ctx, query)
    return _fetch(ctx, statement, statement.order_by(*order), query, count, joins)


def matching_ids(ctx: Context, query: Query) -> list[int]:
    """Every image ``query`` keeps, in its order (all pages): what the explorer plots.

    As :func:`page`, sorting by a metric or rating leaves out images without one.
    """
    statement, _, order = _statement(ctx, query)
    with ctx.engine.connect() as connection:
        return [int(i) for i in connection.execute(statement.order_by(*order)).scalars()]


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
