"""Composite indices from standardised metrics, and low/mid/high bins.

Pure functions over a DataFrame with one row per image and one column per metric key.
Standardisation statistics and cut points are plain JSON-able dicts, so a run can store
them and an export can be reproduced exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from itagger_lib.errors import ScienceError

__all__ = [
    "BIN_LABELS",
    "COMPOSITES",
    "assign_bins",
    "compute_composites",
    "compute_cut_points",
    "standardisation_stats",
    "tertile_cut_points",
]

BIN_LABELS = ("low", "mid", "high")
# composite key -> ((metric key, sign), ...): the composite is the mean of sign * z(metric).
COMPOSITES: dict[str, tuple[tuple[str, int], ...]] = {
    # How much there is to see: edges, tonal variety, colour and fractal fill.
    "composite.visual_richness": (
        ("complexity.edge_density", 1),
        ("complexity.luminance_entropy", 1),
        ("colour.colourfulness", 1),
        ("fractal.dimension", 1),
    ),
    # Complexity held together by order (Berlyne; Salingaros): complex and fractal,
    # but symmetric and with few dominant orientations.
    "composite.organised_complexity": (
        ("complexity.edge_density", 1),
        ("fractal.dimension", 1),
        ("complexity.compression_ratio", 1),
        ("symmetry.left_right", 1),
        ("lines.orientation_entropy", -1),
    ),
    # Green pixels, blue or grey joined to the top edge, and oblique rather than carpentered
    # lines: colour and line heuristics, named for what they count ("naturalness" until 0.2).
    "composite.green_blue_oblique": (
        ("colour_areas.green_share", 1),
        ("colour_areas.top_blue_grey_share", 1),
        ("lines.oblique_share", 1),
    ),
    # Openness of the view: blue or grey at the top, an open centre, little clutter.
    "composite.openness": (
        ("colour_areas.top_blue_grey_share", 1),
        ("space.central_openness", 1),
        ("space.clutter", -1),
    ),
}


def _require(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ScienceError(
            f"{what} needs metric {missing[0]!r}, which is not a column of the table; "
            "compute that metric family first"
        )


def standardisation_stats(df: pd.DataFrame, columns: Iterable[str]) -> dict[str, list[float]]:
    """``{column: [mean, std]}`` over the non-missing values (population std, ddof = 0)."""
    columns = list(columns)
    _require(df, columns, "standardisation")
    stats = {}
    for column in columns:
        values = pd.to_numeric(df[column], errors="coerce").astype(float)
        stats[column] = [float(values.mean()), float(values.std(ddof=0))]
    return stats


def compute_composites(
    df: pd.DataFrame,
    composites: Mapping[str, Iterable[tuple[str, int]]] | None = None,
    stats: Mapping[str, Iterable[float]] | None = None,
) -> pd.DataFrame:
    """Composite indices: the mean of signed z-scores of their components.

    ``composite = (1/k) sum_m s_m (x_m - μ_m) / σ_m`` with ``μ, σ`` from ``stats`` (default:
    :func:`standardisation_stats` of ``df`` itself, i.e. relative to this image set).
    A component with σ = 0 contributes z = 0; an image missing any component gets NaN.

    Returns
    -------
    DataFrame
        Same index as ``df``, one column per composite (mean 0 over the reference set).
    """
    definitions = {name: tuple(parts) for name, parts in (composites or COMPOSITES).items()}
    needed = sorted({metric for parts in definitions.values() for metric, _ in parts})
    _require(df, needed, "a composite")
    reference = {k: list(v) for k, v in (stats or standardisation_stats(df, needed)).items()}
    out = pd.DataFrame(index=df.index)
    for name, parts in definitions.items():
        scores = []
        for metric, sign in parts:
            if metric not in reference:
                raise ScienceError(f"standardisation stats lack {metric!r}, needed by {name!r}")
            mean, std = reference[metric]
            values = pd.to_numeric(df[metric], errors="coerce").astype(float)
            z = (values - mean) / std if std > 0 else values * 0.0
            scores.append(float(np.sign(sign)) * z)
        out[name] = pd.concat(scores, axis=1).mean(axis=1, skipna=False)
    return out


def tertile_cut_points(series: pd.Series) -> tuple[float, float]:
    """The 1/3 and 2/3 quantiles (linear interpolation) of the non-missing values."""
    values = pd.to_numeric(series, errors="coerce").dropna().astype(float)
    if values.empty:
        raise ScienceError(f"cannot compute tertiles of {series.name!r}: it has no values")
    return float(values.quantile(1 / 3)), float(values.quantile(2 / 3))


def compute_cut_points(
    df: pd.DataFrame, columns: Iterable[str], method: str | Mapping[str, Any] = "tertiles"
) -> dict[str, list[float]]:
    """Cut points ``{column: [low, high]}`` for :func:`assign_bins`.

    ``method="tertiles"`` takes them from ``df`` (the workspace); a mapping gives fixed cut
    points for each column (validated: two finite numbers with low <= high).
    """
    columns = list(columns)
    if isinstance(method, str):
        if method != "tertiles":
            raise ScienceError(f"unknown cut-point method {method!r}; use 'tertiles' or a dict")
        _require(df, columns, "tertile binning")
        return {c: list(tertile_cut_points(df[c])) for c in columns}
    cut_points: dict[str, list[float]] = {}
    for column in columns:
        if column not in method:
            raise ScienceError(f"fixed cut points lack column {column!r}; give [low, high] for it")
        pair = [float(v) for v in method[column]]
        if len(pair) != 2 or not all(np.isfinite(pair)) or pair[0] > pair[1]:
            raise ScienceError(
                f"cut points for {column!r} must be [low, high] with low <= high, got {method[column]!r}"
            )
        cut_points[column] = pair
    return cut_points


def assign_bins(df: pd.DataFrame, cut_points: Mapping[str, Iterable[float]]) -> pd.DataFrame:
    """Low/mid/high bins: ``x <= low`` → "low", ``low < x <= high`` → "mid", else "high".

    Returns
    -------
    DataFrame
        Same index as ``df``; one ordered categorical column (low < mid < high) per cut-point
        column, named like it; missing values stay missing.
    """
    _require(df, cut_points, "binning")
    dtype = pd.CategoricalDtype(list(BIN_LABELS), ordered=True)
    out = pd.DataFrame(index=df.index)
    for column, pair in cut_points.items():
        low, high = (float(v) for v in pair)
        values = pd.to_numeric(df[column], errors="coerce").astype(float).to_numpy()
        codes = np.where(values <= low, 0, np.where(values <= high, 1, 2))
        codes = np.where(np.isnan(values), -1, codes)
        out[column] = pd.Categorical.from_codes(codes, dtype=dtype)
    return out
