"""The Bayesian-network export: per-image variables as discrete states, each with its rule.

A variable is discretised only where its states mean something, and never by bins made up
at export time:

* a science metric (composites included) by the tertile cut points its run stored:
  ``x <= low`` → low, ``low < x <= high`` → mid, ``x > high`` → high;
* a nominal rating (binary, categorical) as its modal category, states = the codebook's
  levels; an image whose categories tie is missing (``n_tied`` counts them);
* an ordinal rating as its lower median (the lower of the two middle ratings when their
  number is even, so always a scale point), states = the scale's levels;
* a multi-label rating as one yes/no variable per label: yes where more than half of the
  ratings chose it, no where fewer, missing at exactly half;
* a VLM answer (its primary run) as the answer itself, by the same rules;
* continuous ratings, metrics without stored cut points and adjudicated values are left
  out, each with its reason (``left_out``).

Each variable's entry says its source, attribute or metric, statistic, states, cut points
and rule; ``bn_codebook.json`` holds them beside ``bn.csv``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from itagger_lib.ratings.aggregate import level_of

if TYPE_CHECKING:
    from itagger_lib.codebook import Attribute

__all__ = ["BINNED", "STATES", "bn_frame"]

STATES = ("low", "mid", "high")
BINNED = "x <= low → low; low < x <= high → mid; x > high → high"
_YES_NO = ("no", "yes")


def _metric_variables(
    metrics: pd.DataFrame, cut_points: Mapping[str, Sequence[float]], run_id: Any
) -> tuple[dict[str, pd.Series], list[dict[str, Any]], list[dict[str, Any]]]:
    states: dict[str, pd.Series] = {}
    variables, left_out = [], []
    for column in metrics.columns:
        name = str(column)
        if name.startswith(("bin.", "meta.")) or not pd.api.types.is_numeric_dtype(metrics[column]):
            continue
        if name not in cut_points:
            left_out.append(
                {
                    "name": name,
                    "source": "metric",
                    "reason": f"science run {run_id} stored no cut points for it; bins are not invented",
                }
            )
            continue
        low, high = (float(v) for v in cut_points[name])
        values = metrics[column].astype(float)
        state = np.where(values <= low, "low", np.where(values <= high, "mid", "high"))
        states[name] = pd.Series(state, index=metrics.index).where(values.notna(), "")
        variables.append(
            {
                "name": name,
                "source": "metric",
                "metric": name,
                "statistic": "value",
                "states": list(STATES),
                "cut_points": [low, high],
                "cut_source": "stored",
                "science_run_id": run_id,
                "rule": BINNED,
            }
        )
    return states, variables, left_out


def _level_names(attribute: Attribute) -> list[str]:
    return [str(v) for v in attribute.values]


def _as_state(value: Any) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _categorical(
    name: str, values: pd.Series, attribute: Attribute, entry: dict[str, Any], rule: str
) -> tuple[dict[str, pd.Series], list[dict[str, Any]]]:
    state = values.map(_as_state).astype(object)
    levels = _level_names(attribute)
    extra = sorted({s for s in state if s and s not in levels})
    variable = {**entry, "name": name, "states": levels + extra, "cut_points": None, "rule": rule}
    if extra:
        variable["not_in_codebook"] = extra
    return {name: state}, [variable]


def _labels(
    stem: str, chosen: pd.DataFrame, attribute: Attribute, entry: dict[str, Any], rule: str
) -> tuple[dict[str, pd.Series], list[dict[str, Any]]]:
    states: dict[str, pd.Series] = {}
    variables = []
    for label in _level_names(attribute):
        name = f"{stem}.{label}"
        states[name] = chosen[label] if label in chosen else pd.Series("", index=chosen.index, dtype=object)
        variables.append(
            {
                **entry,
                "name": name,
                "category": label,
                "states": list(_YES_NO),
                "cut_points": None,
                "rule": rule,
            }
        )
    return states, variables


def _refused(name: str, source: str, key: str, reason: str) -> dict[str, Any]:
    return {"name": name, "source": source, "attribute": key, "reason": reason}


def _vlm_labels(text: pd.Series, attribute: Attribute) -> pd.DataFrame:
    def chosen(answer: Any, label: str) -> str:
        return "" if not isinstance(answer, str) else ("yes" if label in answer.split(";") else "no")

    return pd.DataFrame(
        {label: text.map(lambda t, label=label: chosen(t, label)) for label in _level_names(attribute)},
        index=text.index,
    )


def _majorities(rated: pd.DataFrame, stem: str, attribute: Attribute) -> pd.DataFrame:
    chosen = pd.DataFrame(index=rated.index)
    for label in _level_names(attribute):
        share = rated.get(f"{stem}.share.{label}")
        if share is not None:
            state = np.where(share > 0.5, "yes", np.where(share < 0.5, "no", ""))
            chosen[label] = pd.Series(state, index=rated.index).where(share.notna(), "")
    return chosen


def _attribute_variables(
    rated: pd.DataFrame, source: str, key: str, attribute: Attribute | None, vlm: Mapping[str, Any] | None
) -> tuple[dict[str, pd.Series], list[dict[str, Any]], list[dict[str, Any]]]:
    """The variables of one attribute's columns from one source (``rating`` or ``vlm``)."""
    stem = f"{source}.{key}"
    refused = []
    if f"{stem}.adjudicated" in rated:
        refused.append(
            _refused(
                f"{stem}.adjudicated",
                source,
                key,
                "an adjudicated consensus is not a variable of its own; see table.*",
            )
        )
    if not any(str(c).startswith(f"{stem}.") and not str(c).endswith(".adjudicated") for c in rated.columns):
        return {}, [], refused
    if attribute is None or attribute.type == "continuous":
        reason = (
            "continuous (or no codebook entry): no levels and no stored cut points; bins are not invented"
        )
        return {}, [], [*refused, _refused(stem, source, key, reason)]
    entry: dict[str, Any] = {
        "source": source,
        "attribute": key,
        "type": attribute.type,
        "level": level_of(attribute),
    }
    if source == "vlm" and vlm:
        entry |= {"rater": vlm.get("rater"), "primary_run_id": vlm.get("primary_run_id")}
    if attribute.type == "multi_label":
        if source == "vlm":
            more, found = _labels(
                f"{stem}.answer",
                _vlm_labels(rated[f"{stem}.answer"], attribute),
                attribute,
                entry | {"statistic": "answer"},
                "yes where the primary run's answer chose the label",
            )
        else:
            more, found = _labels(
                f"{stem}.majority",
                _majorities(rated, stem, attribute),
                attribute,
                entry | {"statistic": "majority"},
                "yes where more than half of the ratings chose the label, no where "
                "fewer; missing at exactly half",
            )
        return more, found, refused
    if source == "vlm":
        column, rule = f"{stem}.answer", "the answer of the VLM's primary run"
    elif attribute.type == "ordinal":
        column, rule = f"{stem}.median_low", "the lower median of the ratings (a level of the scale)"
    else:
        column, rule = f"{stem}.mode", "the modal category; missing where categories tie"
    if column not in rated:
        return {}, [], [*refused, _refused(stem, source, key, f"no column {column} to take states from")]
    more, found = _categorical(
        column, rated[column], attribute, entry | {"statistic": column.rsplit(".", 1)[1]}, rule
    )
    if column.endswith(".mode"):
        found[0]["n_tied"] = int(rated[f"{stem}.tied_modes"].notna().sum())
    return more, found, refused


def _rating_variables(
    rated: pd.DataFrame, attributes: Mapping[str, Attribute], vlm: Mapping[str, Any] | None
) -> tuple[dict[str, pd.Series], list[dict[str, Any]], list[dict[str, Any]]]:
    described: dict[str, dict[str, Any]] = rated.attrs.get("columns", {})
    states: dict[str, pd.Series] = {}
    variables: list[dict[str, Any]] = []
    left_out: list[dict[str, Any]] = []
    for source, key in dict.fromkeys((info["source"], info["attribute"]) for info in described.values()):
        more, found, refused = _attribute_variables(rated, source, key, attributes.get(key), vlm)
        states |= more
        variables += found
        left_out += refused
    return states, variables, left_out


def bn_frame(
    metrics: pd.DataFrame,
    cut_points: Mapping[str, Sequence[float]],
    rated: pd.DataFrame | None = None,
    attributes: Mapping[str, Attribute] | None = None,
) -> tuple[pd.DataFrame, list[dict[str, Any]], list[dict[str, Any]]]:
    """Discretise per-image metrics and ratings into states for Bayesian-network modelling.

    Parameters
    ----------
    metrics : science metrics, image × metric (:func:`~itagger_lib.science.results.metrics_frame`;
        ``attrs["run_id"]`` names the run).
    cut_points : the run's stored cut points (``{metric: [low, high]}``).
    rated : per-image rating columns (:func:`~itagger_lib.export.table.rating_columns` with
        ``ordinal=("median_low",)``), their ``attrs`` describing each column.
    attributes : the codebook attributes by key.

    Returns
    -------
    (states, variables, left_out)
        ``states``: image × variable (text states, empty where missing); ``variables``: one
        entry per variable (name, source, attribute or metric, statistic, type and level,
        states, cut points, rule); ``left_out``: the columns refused, each with its reason.
    """
    index = metrics.index
    if rated is not None:
        index = index.union(rated.index)
    columns, variables, left_out = _metric_variables(metrics, cut_points, metrics.attrs.get("run_id"))
    if rated is not None and attributes is not None:
        more, found, refused = _rating_variables(rated, attributes, rated.attrs.get("vlm"))
        columns |= more
        variables += found
        left_out += refused
    states = pd.DataFrame(
        {name: series.reindex(index).fillna("") for name, series in columns.items()}, index=index
    )
    states.index.name = "image_id"
    return states, variables, left_out
