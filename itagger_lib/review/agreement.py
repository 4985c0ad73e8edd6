"""Agreement tables over long ratings: per attribute (and group), VLM vs humans, test–retest, gold.

The functions here take a long ratings DataFrame with at least ``image_id``, ``rater``,
``attribute`` and ``value`` (numeric codes), plus optionally ``is_repeat`` / ``repeat_index``
(repeated items) and ``source``. They return DataFrames and never touch a database;
:mod:`~itagger_lib.review.reading` is the edge that reads a workspace's ratings for them
(``ws.agreement()``).

Which ratings enter inter-rater agreement: first presentations only (``is_repeat`` false and
``repeat_index`` 0 when those columns exist; otherwise each rater's first rating of a unit).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from itagger_lib.review.coefficients import (
    bootstrap_ci,
    cohen_kappa,
    fleiss_kappa,
    gwet_ac1,
    icc,
    krippendorff_alpha,
    pairable,
    percent_agreement,
    ratings_matrix,
    undefined_reason,
)

__all__ = [
    "LEVEL_OF_TYPE",
    "agreement_table",
    "codebook_levels",
    "first_presentations",
    "gold_accuracy",
    "is_vlm",
    "label_vlm_raters",
    "test_retest",
    "vlm_raters",
    "vlm_vs_human",
]

LEVEL_OF_TYPE = {
    "binary": "nominal",
    "categorical": "nominal",
    "ordinal": "ordinal",
    "continuous": "interval",
}
CATEGORICAL_LEVELS = ("nominal", "ordinal")
DEFAULT_N_BOOT = 1000
TABLE_COLUMNS = [
    "attribute",
    "level",
    "n_units",
    "n_pairable",
    "n_raters",
    "alpha",
    "alpha_ci_low",
    "alpha_ci_high",
    "fleiss_kappa",
    "gwet_ac1",
    "cohen_kappa_mean",
    "icc",
    "percent_agreement",
    "note",
]


def is_vlm(rater: str) -> bool:
    """A VLM rater is named ``vlm:<provider/model[@prompt version]>``."""
    return str(rater).startswith("vlm:")


def vlm_raters(raters: pd.Series) -> pd.Series:
    """:func:`is_vlm` of every rater name in ``raters``, vectorised (a boolean Series)."""
    return raters.astype(str).str.startswith("vlm:")


def first_presentations(ratings: pd.DataFrame) -> pd.DataFrame:
    """The ratings of first presentations: repeated items (test–retest) left out."""
    keep = pd.Series(True, index=ratings.index)
    if "is_repeat" in ratings:
        keep &= ~ratings["is_repeat"].fillna(False).astype(bool)
    if "repeat_index" in ratings:
        keep &= ratings["repeat_index"].fillna(0).astype(int) == 0
    return ratings[keep]


def _domain(domains: Mapping[str, Sequence[float]] | None, attribute: str) -> list[float] | None:
    if domains is None or attribute not in domains:
        return None
    return [float(v) for v in domains[attribute]]


def _mean_pairwise_kappa(matrix: pd.DataFrame, weights: str | None, domain: list[float] | None) -> float:
    kappas = [
        cohen_kappa(matrix[a], matrix[b], weights=weights, categories=domain)
        for a, b in itertools.combinations(matrix.columns, 2)
    ]
    kappas = [k for k in kappas if not np.isnan(k)]
    return float(np.mean(kappas)) if kappas else float("nan")


def _row(
    attribute: str,
    level: str,
    matrix: pd.DataFrame,
    domain: list[float] | None,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    n_units, n_pairable = pairable(matrix)
    note = undefined_reason(matrix)
    categorical = level in CATEGORICAL_LEVELS
    alpha = krippendorff_alpha(matrix, level, domain)
    interval = bootstrap_ci(matrix, lambda m: krippendorff_alpha(m, level, domain), n_boot=n_boot, seed=seed)
    weights = "quadratic" if level == "ordinal" else None
    return {
        "attribute": attribute,
        "level": level,
        "n_units": n_units,
        "n_pairable": n_pairable,
        "n_raters": int(matrix.notna().any().sum()),
        "alpha": alpha,
        "alpha_ci_low": interval.low if not note else float("nan"),
        "alpha_ci_high": interval.high if not note else float("nan"),
        "fleiss_kappa": fleiss_kappa(matrix, domain) if categorical else float("nan"),
        "gwet_ac1": gwet_ac1(matrix, domain) if categorical else float("nan"),
        "cohen_kappa_mean": _mean_pairwise_kappa(matrix, weights, domain) if categorical else float("nan"),
        "icc": icc(matrix, "ICC(2,1)") if not categorical else float("nan"),
        "percent_agreement": percent_agreement(matrix) if categorical else float("nan"),
        "note": note,
    }


def agreement_table(
    ratings: pd.DataFrame,
    levels: Mapping[str, str],
    by: pd.Series | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    domains: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """Inter-rater agreement per attribute (and per group), one row each.

    Parameters
    ----------
    ratings : long ratings ``image_id, rater, attribute, value`` (numeric codes).
    levels : attribute → level of measurement (``nominal``, ``ordinal``, ``interval``,
        ``ratio``). Attributes without a level are skipped.
    by : optional Series indexed by ``image_id`` giving each image's group (a science bin,
        a collection); adds a ``group`` column, one row per attribute × group.
    n_boot : bootstrap replicates for the alpha interval (resampling images; 0 = none).
    seed : seed of the bootstrap stream.
    domains : attribute → the codebook's possible values, so unused categories still count
        for kappa/AC1 (and fix the category order).

    Returns
    -------
    DataFrame
        Columns: attribute, level, n_units, n_pairable, n_raters, alpha, alpha_ci_low,
        alpha_ci_high, fleiss_kappa and gwet_ac1 (nominal/ordinal, unweighted),
        cohen_kappa_mean (mean over rater pairs; quadratic-weighted for ordinal),
        icc (ICC(2,1), interval/ratio only), percent_agreement (nominal/ordinal), note
        (why a coefficient is ``NaN``), and ``group`` when ``by`` is given.
    """
    ratings = first_presentations(ratings)
    groups: list[tuple[Any, pd.DataFrame]]
    if by is None:
        groups = [(None, ratings)]
    else:
        group_of = ratings["image_id"].map(by)
        groups = [(key, ratings[group_of == key]) for key in sorted(group_of.dropna().unique(), key=str)]
    rows = []
    for group, frame in groups:
        for attribute, level in levels.items():
            subset = frame[frame["attribute"] == attribute]
            matrix = ratings_matrix(subset) if len(subset) else pd.DataFrame(dtype=float)
            row = _row(attribute, level, matrix, _domain(domains, attribute), n_boot, seed)
            if by is not None:
                row["group"] = group
            rows.append(row)
    columns = TABLE_COLUMNS if by is None else ["group", *TABLE_COLUMNS]
    return pd.DataFrame(rows, columns=columns)


def _pairwise_alpha(matrix: pd.DataFrame, pairs: Iterable[tuple[str, str]], level: str, domain: Any) -> float:
    values = [krippendorff_alpha(matrix[[a, b]], level, domain) for a, b in pairs]
    values = [v for v in values if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


def vlm_vs_human(
    ratings: pd.DataFrame,
    levels: Mapping[str, str],
    domains: Mapping[str, Sequence[float]] | None = None,
) -> pd.DataFrame:
    """Each VLM rater as one more rater, beside the human–human ceiling.

    For every attribute and every VLM rater (``vlm:…``; one per model/prompt version):

    * ``human_alpha``: alpha among the humans only (the ceiling a rater can reach);
    * ``with_vlm_alpha``: alpha of humans plus this VLM (it drops if the VLM disagrees more
      than a typical human does); ``delta`` = with_vlm_alpha − human_alpha;
    * ``human_pairwise_alpha``: mean alpha over human pairs;
    * ``vlm_pairwise_alpha``: mean alpha of the VLM paired with each human — directly
      comparable to ``human_pairwise_alpha``;
    * ``n_units``: images rated by the VLM and at least one human.
    """
    ratings = first_presentations(ratings)
    rows = []
    for attribute, level in levels.items():
        subset = ratings[ratings["attribute"] == attribute]
        if subset.empty:
            continue
        matrix = ratings_matrix(subset)
        humans = [r for r in matrix.columns if not is_vlm(r)]
        domain = _domain(domains, attribute)
        human_alpha = krippendorff_alpha(matrix[humans], level, domain) if humans else float("nan")
        human_pairs = _pairwise_alpha(matrix, itertools.combinations(humans, 2), level, domain)
        for vlm in (r for r in matrix.columns if is_vlm(r)):
            shared = matrix[vlm].notna() & matrix[humans].notna().any(axis=1)
            with_vlm = krippendorff_alpha(matrix[[*humans, vlm]], level, domain)
            rows.append(
                {
                    "attribute": attribute,
                    "level": level,
                    "vlm": vlm,
                    "n_units": int(shared.sum()),
                    "n_humans": len(humans),
                    "human_alpha": human_alpha,
                    "with_vlm_alpha": with_vlm,
                    "delta": with_vlm - human_alpha,
                    "human_pairwise_alpha": human_pairs,
                    "vlm_pairwise_alpha": _pairwise_alpha(matrix, [(vlm, h) for h in humans], level, domain),
                }
            )
    columns = [
        "attribute",
        "level",
        "vlm",
        "n_units",
        "n_humans",
        "human_alpha",
        "with_vlm_alpha",
        "delta",
        "human_pairwise_alpha",
        "vlm_pairwise_alpha",
    ]
    return pd.DataFrame(rows, columns=columns)


def _occasion(ratings: pd.DataFrame) -> pd.Series:
    occasion = pd.Series(0, index=ratings.index)
    if "repeat_index" in ratings:
        occasion = ratings["repeat_index"].fillna(0).astype(int)
    if "is_repeat" in ratings:
        occasion = occasion.where(~ratings["is_repeat"].fillna(False).astype(bool), occasion.clip(lower=1))
    return occasion


def test_retest(ratings: pd.DataFrame, levels: Mapping[str, str]) -> pd.DataFrame:
    """Test–retest reliability per rater and attribute from repeated items.

    A repeated item is a rating with ``is_repeat`` true or ``repeat_index`` > 0 (VLM repeats
    of the same call give VLM self-consistency). Each repeat is paired with the same rater's
    first presentation (occasion 0) of that image; occasions become the "raters" of a
    reliability matrix.

    Returns
    -------
    DataFrame
        rater, attribute, level, n_pairs (images seen again), alpha (across occasions, at
        the attribute's level), exact (share of repeats equal to the first answer),
        mean_abs_diff (mean |repeat − first|).
    """
    rows = []
    frame = ratings.assign(_occasion=_occasion(ratings))
    for (rater, attribute), subset in frame.groupby(["rater", "attribute"], sort=True):
        level = levels.get(str(attribute))
        if level is None or not (subset["_occasion"] > 0).any():
            continue
        wide = subset.drop_duplicates(["image_id", "_occasion"]).pivot(
            index="image_id", columns="_occasion", values="value"
        )
        wide = (
            wide[wide[0].notna() & wide.drop(columns=0).notna().any(axis=1)] if 0 in wide else wide.iloc[:0]
        )
        repeats = wide.drop(columns=0, errors="ignore")
        diffs = repeats.sub(wide[0], axis=0) if 0 in wide else repeats
        rows.append(
            {
                "rater": rater,
                "attribute": attribute,
                "level": level,
                "n_pairs": len(wide),
                "alpha": krippendorff_alpha(wide, level) if len(wide) else float("nan"),
                "exact": float((diffs == 0).sum().sum() / diffs.notna().sum().sum()) if len(wide) else np.nan,
                "mean_abs_diff": float(np.nanmean(diffs.abs().to_numpy())) if len(wide) else np.nan,
            }
        )
    columns = ["rater", "attribute", "level", "n_pairs", "alpha", "exact", "mean_abs_diff"]
    return pd.DataFrame(rows, columns=columns)


test_retest.__test__ = False  # type: ignore[attr-defined]  # a library function, not a pytest test


def gold_accuracy(ratings: pd.DataFrame, gold: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of each rater on gold items (images with a known answer).

    Parameters
    ----------
    ratings : long ratings (all presentations count).
    gold : ``image_id, attribute, value``: the known answer per image and attribute.

    Returns
    -------
    DataFrame
        rater, attribute, n_gold (gold items answered), accuracy (share exactly right),
        mean_abs_error (mean |answer − gold|, useful for ordinal/continuous scales).
    """
    merged = ratings.merge(
        gold[["image_id", "attribute", "value"]].rename(columns={"value": "gold"}),
        on=["image_id", "attribute"],
    ).dropna(subset=["value", "gold"])
    merged = merged.assign(
        correct=merged["value"] == merged["gold"], error=(merged["value"] - merged["gold"]).abs()
    )
    table = (
        merged.groupby(["rater", "attribute"], sort=True)
        .agg(n_gold=("value", "size"), accuracy=("correct", "mean"), mean_abs_error=("error", "mean"))
        .reset_index()
    )
    return table


def codebook_levels(definition: Mapping[str, Any] | str) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Levels of measurement and numeric domains from a stored codebook definition.

    ``definition = {"attributes": [{"key": ..., "type": ..., "levels": [...]}, ...]}``;
    binary/categorical → nominal, ordinal → ordinal, continuous → interval; multi_label and
    unknown types are left out (no single-valued agreement applies). A domain is kept only
    when every level is a number; otherwise category codes are the level indices
    ``0..q-1``.
    """
    parsed: Mapping[str, Any] = json.loads(definition) if isinstance(definition, str) else definition
    levels: dict[str, str] = {}
    domains: dict[str, list[float]] = {}
    for attribute in parsed.get("attributes", []):
        level = LEVEL_OF_TYPE.get(str(attribute.get("type")))
        if level is None:
            continue
        key = str(attribute["key"])
        levels[key] = level
        # Levels are stored as {"value": ..., "label": ...} mappings (or, in older
        # definitions and tests, as bare values).
        values: list[Any] = [
            v.get("value") if isinstance(v, Mapping) else v for v in attribute.get("levels") or []
        ]
        if level in CATEGORICAL_LEVELS and values:
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            domains[key] = [float(v) for v in values] if numeric else [float(i) for i in range(len(values))]
    return levels, domains


def label_vlm_raters(ratings: pd.DataFrame) -> pd.DataFrame:
    """Name every VLM rating's rater ``vlm:<rater>[@<prompt version>]``.

    A rating is a VLM's when its ``source`` is ``vlm`` (or its rater already starts with
    ``vlm:``). The prompt version (column ``vlm_prompt_version``, from the VLM call) is
    appended when the name lacks it, so each model × prompt version is its own rater.
    """
    if ratings.empty or "source" not in ratings:
        return ratings
    named = vlm_raters(ratings["rater"])
    vlm = (ratings["source"] == "vlm") | named
    names = ratings["rater"].astype(str).where(named, "vlm:" + ratings["rater"].astype(str))
    if "vlm_prompt_version" in ratings:
        version = ratings["vlm_prompt_version"]
        add = version.notna() & ~pd.Series(
            [f"@{v}" in n for n, v in zip(names, version)], index=ratings.index, dtype=bool
        )
        names = names.where(~add, names + "@" + version.astype(str))
    return ratings.assign(rater=ratings["rater"].where(~vlm, names))
