"""Per-image values of ratings by level of measurement: what a per-image table may say.

Pure functions over long ratings (``image_id, attribute, value, value_text``) and the
codebook's attributes; the per-image table, the BN export and the inspector call them, and
``rating_means`` keeps the same statistics in the database for the explorer. Every column
names its statistic: ``<source>.<attribute>.<statistic>``.

=========================  ===============================================================
level (codebook type)      columns
=========================  ===============================================================
nominal (binary,           ``mode`` (the modal category; missing when several tie),
categorical)               ``tied_modes`` (the tied categories, ``;``-joined, in codebook
                           order; missing when one category is modal), ``mode_share`` (the
                           modal categories' share), ``share.<category>`` for every level of
                           the codebook, ``n``
multi-label                ``share.<label>``: the share of ratings that chose the label, for
                           every level; ``n``
ordinal                    ``median`` (the midpoint of the two middle ratings when n is
                           even, as pandas and R), ``n``; ``mean_as_interval`` only when
                           asked (the mean of scale points, treating them as equally
                           spaced); ``median_low`` (the lower middle rating) when asked
interval (continuous)      ``mean``, ``sd`` (ddof 1; missing for n < 2), ``n``
=========================  ===============================================================

A category is a rating's ``value_text`` (categorical labels, stored with their level index)
or its whole-number value (binary and numeric levels), so codebook versions that list the
levels in another order still count the same category together. Ratings without a value
are missing and not counted; an image nobody rated has ``n`` = 0 and every statistic
missing. Attributes with no codebook entry are treated as interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from itagger_lib.codebook import Attribute

__all__ = ["aggregate", "answers", "category", "describe_columns", "level_of", "statistic_of"]

#: The level of measurement of each codebook type, as aggregation uses it (multi-label is
#: its own case: each label is a yes/no of its own).
LEVELS = {
    "binary": "nominal",
    "categorical": "nominal",
    "multi_label": "multi_label",
    "ordinal": "ordinal",
    "continuous": "interval",
}


def level_of(attribute: Attribute | None) -> str:
    """``nominal``, ``multi_label``, ``ordinal`` or ``interval`` (no codebook entry: interval)."""
    return "interval" if attribute is None else LEVELS[attribute.type]


def statistic_of(attribute: Attribute | None) -> str:
    """The statistic that stands for an image's ratings of ``attribute`` where one number or
    category is shown or filtered on (the explorer, ``rating_means``): ``mode``, ``median`` or
    ``mean``; ``share`` for multi-label attributes (one per label)."""
    return {"nominal": "mode", "ordinal": "median", "interval": "mean", "multi_label": "share"}[
        level_of(attribute)
    ]


def _categories(attribute: Attribute | None) -> list[Any]:
    return [] if attribute is None else list(attribute.values)


def category(value: Any, value_text: Any, numeric_levels: bool) -> Any:
    """A stored rating's category: its text, else its value (a whole number for numeric levels)."""
    if isinstance(value_text, str):
        return value_text
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return int(value) if numeric_levels and float(value).is_integer() else value


def _nominal(rows: pd.DataFrame, attribute: Attribute | None, stem: str) -> pd.DataFrame:
    levels = _categories(attribute)
    numeric = all(isinstance(v, int) for v in levels)
    cats = [category(v, t, numeric) for v, t in zip(rows["value"], rows["value_text"], strict=True)]
    rows = rows.assign(_category=cats).dropna(subset=["_category"])
    observed = [c for c in dict.fromkeys(rows["_category"]) if c not in levels]
    order = levels + sorted(observed, key=str)
    counts = pd.crosstab(rows["image_id"], rows["_category"]).reindex(columns=order, fill_value=0)
    n = counts.sum(axis=1)
    top = counts.max(axis=1)
    modal = counts.eq(top, axis=0) & (counts > 0)
    tied = modal.sum(axis=1) > 1
    names = np.array([str(c) for c in order], dtype=object)
    joined = pd.Series([";".join(names[row]) for row in modal.to_numpy()], index=counts.index)
    first = pd.Series([order[int(np.argmax(row))] for row in modal.to_numpy()], index=counts.index)
    out = pd.DataFrame(index=counts.index)
    out[f"{stem}.mode"] = first.where(~tied).astype("Int64" if numeric and levels else object)
    out[f"{stem}.tied_modes"] = joined.where(tied).astype(object)
    out[f"{stem}.mode_share"] = top / n
    for name, column in zip(names, order, strict=True):
        out[f"{stem}.share.{name}"] = counts[column] / n
    out[f"{stem}.n"] = n.astype("int64")
    return out


def _multi_label(rows: pd.DataFrame, attribute: Attribute | None, stem: str) -> pd.DataFrame:
    rows = rows[rows["value_text"].map(lambda t: isinstance(t, str))]
    labels = [str(v) for v in _categories(attribute)]
    chosen = rows["value_text"].map(lambda t: {part for part in t.split(";") if part})
    observed = sorted({label for parts in chosen for label in parts} - set(labels))
    out = pd.DataFrame(index=pd.Index(sorted(rows["image_id"].unique()), name="image_id"))
    n = rows.groupby("image_id").size()
    for label in labels + observed:
        hits = chosen.map(lambda parts, label=label: label in parts).groupby(rows["image_id"]).sum()
        out[f"{stem}.share.{label}"] = hits / n
    out[f"{stem}.n"] = n.astype("int64")
    return out


def _median_low(values: pd.Series) -> float:
    ordered = np.sort(values.to_numpy(dtype=float))
    return float(ordered[(len(ordered) - 1) // 2])


def _numeric(rows: pd.DataFrame, level: str, stem: str, ordinal: tuple[str, ...]) -> pd.DataFrame:
    rows = rows.dropna(subset=["value"])
    values = rows["value"].astype(float).groupby(rows["image_id"])
    out = pd.DataFrame(index=pd.Index(sorted(rows["image_id"].unique()), name="image_id"))
    if level == "ordinal":
        for statistic in ordinal:
            if statistic == "median":
                out[f"{stem}.median"] = values.median()
            elif statistic == "median_low":
                out[f"{stem}.median_low"] = values.agg(_median_low)
            else:
                out[f"{stem}.mean_as_interval"] = values.mean()
    else:
        out[f"{stem}.mean"] = values.mean()
        out[f"{stem}.sd"] = values.std(ddof=1)
    out[f"{stem}.n"] = values.size().astype("int64")
    return out


def aggregate(
    ratings: pd.DataFrame,
    attributes: Mapping[str, Attribute],
    *,
    prefix: str = "rating",
    ordinal: tuple[str, ...] = ("median",),
) -> pd.DataFrame:
    """Each image's ratings summarised at each attribute's level of measurement.

    Parameters
    ----------
    ratings : long ratings with ``image_id``, ``attribute``, ``value`` and ``value_text``;
        every row counts (choose first presentations and sources before).
    attributes : attribute key → codebook :class:`~itagger_lib.codebook.Attribute`
        (:func:`~itagger_lib.codebook.stored_attributes`).
    prefix : the first part of every column name (``rating``).
    ordinal : the statistics of ordinal attributes, of ``median``, ``median_low`` (the lower
        of the two middle ratings when n is even: always a scale point, what the BN export
        uses) and ``mean_as_interval``.

    Returns
    -------
    DataFrame
        Indexed by ``image_id``, one column per attribute × statistic (module docstring),
        attributes in sorted order; ``attrs["columns"]`` describes each column
        (:func:`describe_columns`).
    """
    parts = []
    for key, rows in sorted(ratings.groupby("attribute", sort=False), key=lambda item: str(item[0])):
        attribute = attributes.get(str(key))
        level = level_of(attribute)
        stem = f"{prefix}.{key}"
        if level == "nominal":
            parts.append(_nominal(rows, attribute, stem))
        elif level == "multi_label":
            parts.append(_multi_label(rows, attribute, stem))
        else:
            parts.append(_numeric(rows, level, stem, ordinal))
    frame = pd.concat(parts, axis=1) if parts else pd.DataFrame(index=pd.Index([], name="image_id"))
    frame.index.name = "image_id"
    for column in frame.columns:  # rated for another attribute only: none of this one
        if str(column).endswith(".n"):
            frame[column] = frame[column].fillna(0).astype("int64")
    frame.attrs["columns"] = describe_columns(frame.columns, attributes, prefix)
    return frame


def answers(ratings: pd.DataFrame, attributes: Mapping[str, Attribute], *, prefix: str) -> pd.DataFrame:
    """One answer per image and attribute, ``<prefix>.<attribute>.answer``: the category
    (nominal), the number (ordinal, interval) or the ``;``-joined labels (multi-label) of the
    newest rating (highest ``rating_id`` when given, else the last row). For one rater's
    single answers: a VLM run's, an adjudicated consensus."""
    if ratings.empty:
        return pd.DataFrame(index=pd.Index([], name="image_id"))
    order = "rating_id" if "rating_id" in ratings else None
    rows = ratings.sort_values(order, kind="stable") if order else ratings
    rows = rows.drop_duplicates(["image_id", "attribute"], keep="last")
    out = pd.DataFrame(index=pd.Index(sorted(rows["image_id"].unique()), name="image_id"))
    for key, group in sorted(rows.groupby("attribute", sort=False), key=lambda item: str(item[0])):
        attribute = attributes.get(str(key))
        level = level_of(attribute)
        if level == "nominal":
            numeric = all(isinstance(v, int) for v in _categories(attribute))
            values = [
                category(v, t, numeric) for v, t in zip(group["value"], group["value_text"], strict=True)
            ]
            column = pd.Series(values, index=group["image_id"].to_numpy(), dtype=object)
            if numeric and _categories(attribute):
                column = column.astype("Int64")
        elif level == "multi_label":
            column = pd.Series(
                group["value_text"].to_numpy(), index=group["image_id"].to_numpy(), dtype=object
            )
        else:
            column = pd.Series(group["value"].astype(float).to_numpy(), index=group["image_id"].to_numpy())
        out[f"{prefix}.{key}.answer"] = column
    out.attrs["columns"] = describe_columns(out.columns, attributes, prefix)
    return out


_MEANING = {
    "mode": "the modal category (missing where categories tie)",
    "tied_modes": "the categories tied for the mode, ';'-joined (missing where one is modal)",
    "mode_share": "share of the ratings in the modal category",
    "share": "share of the ratings that chose this category",
    "median": "median of the scale points (midpoint of the two middle ratings when n is even)",
    "median_low": "lower median: the lower of the two middle ratings when n is even (a scale point)",
    "mean_as_interval": "mean of the scale points, treating them as equally spaced (asked for)",
    "mean": "arithmetic mean",
    "sd": "standard deviation (ddof 1; missing for n < 2)",
    "n": "number of ratings summarised",
    "answer": "the one answer (newest rating)",
    "adjudicated": "the adjudicated consensus answer",
}


def describe_columns(
    columns: Any, attributes: Mapping[str, Attribute], prefix: str
) -> dict[str, dict[str, Any]]:
    """What each aggregate column holds: attribute, codebook type, level, statistic (and
    its meaning), the category of a share."""
    described: dict[str, dict[str, Any]] = {}
    for column in columns:
        rest = str(column)[len(prefix) + 1 :]
        key, _, statistic = rest.partition(".")
        attribute = attributes.get(key)
        entry: dict[str, Any] = {
            "source": prefix,
            "attribute": key,
            "type": None if attribute is None else attribute.type,
            "level": level_of(attribute),
        }
        if statistic.startswith("share."):
            entry["statistic"] = "share"
            entry["category"] = statistic[len("share.") :]
        else:
            entry["statistic"] = statistic
        entry["meaning"] = _MEANING.get(entry["statistic"], "")
        described[str(column)] = entry
    return described
