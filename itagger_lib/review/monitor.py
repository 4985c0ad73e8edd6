"""Rater monitoring: progress, throughput, dwell times and quality flags.

Pure functions over a long ratings DataFrame with ``image_id``, ``rater``, ``attribute``,
``value`` and, where available, ``rated_at``, ``dwell_ms`` and ``position``. Thresholds are
arguments with documented defaults; a flag is a prompt to look, not a verdict.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from itagger_lib.review.coefficients import krippendorff_alpha

__all__ = [
    "consensus_agreement",
    "dwell_summary",
    "fast_answers",
    "rater_flags",
    "rater_progress",
    "straight_lining",
]

FAST_MS = 1500
SESSION_GAP = pd.Timedelta(minutes=30)


def _per_image(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per rater × image (a screen): its time and its longest dwell."""
    columns = {"n_attributes": ("attribute", "size")}
    if "rated_at" in ratings:
        columns["rated_at"] = ("rated_at", "max")
    if "dwell_ms" in ratings:
        columns["dwell_ms"] = ("dwell_ms", "max")
    return ratings.groupby(["rater", "image_id"], sort=True).agg(**columns).reset_index()


def rater_progress(ratings: pd.DataFrame, assigned: Mapping[str, int] | None = None) -> pd.DataFrame:
    """Progress and throughput per rater.

    Throughput is images per active hour; active time is the sum of the gaps between a
    rater's consecutive images that are shorter than 30 minutes (a longer gap starts a new
    session), so breaks do not count.

    Returns
    -------
    DataFrame
        rater, n_images, n_ratings, first_at, last_at, n_sessions, active_hours,
        images_per_hour, and, with ``assigned`` (rater → images assigned), assigned and
        progress (share done, in [0, 1]).
    """
    screens = _per_image(ratings)
    rows = []
    for rater, own in screens.groupby("rater", sort=True):
        row: dict[str, object] = {
            "rater": rater,
            "n_images": len(own),
            "n_ratings": int(own["n_attributes"].sum()),
        }
        if "rated_at" in own:
            times = pd.to_datetime(own["rated_at"], utc=True).sort_values()
            gaps = times.diff().dropna()
            active = gaps[gaps < SESSION_GAP].sum()
            hours = active.total_seconds() / 3600.0 if isinstance(active, pd.Timedelta) else 0.0
            row.update(
                first_at=times.iloc[0],
                last_at=times.iloc[-1],
                n_sessions=int((gaps >= SESSION_GAP).sum()) + 1,
                active_hours=hours,
                images_per_hour=(len(own) - 1) / hours if hours > 0 else float("nan"),
            )
        if assigned is not None:
            total = assigned.get(str(rater), 0)
            row.update(assigned=total, progress=len(own) / total if total else float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def dwell_summary(ratings: pd.DataFrame) -> pd.DataFrame:
    """Dwell-time distribution per rater (milliseconds per image).

    Returns rater, n, p10, median, p90, mean of the per-image dwell (the longest dwell
    recorded for that rater and image).
    """
    screens = _per_image(ratings).dropna(subset=["dwell_ms"])
    return (
        screens.groupby("rater", sort=True)["dwell_ms"]
        .agg(
            n="size",
            p10=lambda s: float(np.quantile(s, 0.1)),
            median="median",
            p90=lambda s: float(np.quantile(s, 0.9)),
            mean="mean",
        )
        .reset_index()
    )


def fast_answers(ratings: pd.DataFrame, min_ms: int = FAST_MS, max_share: float = 0.2) -> pd.DataFrame:
    """Implausibly fast answers: images seen for less than ``min_ms`` milliseconds.

    Returns rater, n_images, n_fast, fast_share, flagged (``fast_share > max_share``).
    Defaults: 1.5 s per image, flag above 20 % of images.
    """
    screens = _per_image(ratings).dropna(subset=["dwell_ms"])
    table = (
        screens.assign(fast=screens["dwell_ms"] < min_ms)
        .groupby("rater", sort=True)
        .agg(n_images=("fast", "size"), n_fast=("fast", "sum"))
        .reset_index()
    )
    table["fast_share"] = table["n_fast"] / table["n_images"]
    table["flagged"] = table["fast_share"] > max_share
    return table


def _longest_run(values: np.ndarray) -> int:
    if values.size == 0:
        return 0
    breaks = np.flatnonzero(values[1:] != values[:-1])
    edges = np.concatenate([[-1], breaks, [values.size - 1]])
    return int(np.max(np.diff(edges)))


def straight_lining(
    ratings: pd.DataFrame, min_run: int = 10, max_modal_share: float = 0.95, min_n: int = 10
) -> pd.DataFrame:
    """Straight-lining: the same answer again and again, per rater and attribute.

    Answers are taken in the order the rater gave them (``position``, else ``rated_at``,
    else frame order). Flagged when the longest run of one value reaches ``min_run`` or one
    value makes up more than ``max_modal_share`` of at least ``min_n`` answers.

    Returns rater, attribute, n, longest_run, modal_share, flagged.
    """
    order = [c for c in ("position", "rated_at") if c in ratings]
    frame = ratings.sort_values(order, kind="stable") if order else ratings
    rows = []
    for (rater, attribute), own in frame.groupby(["rater", "attribute"], sort=True):
        values = own["value"].dropna().to_numpy()
        n = int(values.size)
        modal = float(pd.Series(values).value_counts(normalize=True).iloc[0]) if n else float("nan")
        run = _longest_run(values)
        flagged = run >= min_run or (n >= min_n and modal > max_modal_share)
        rows.append(
            {
                "rater": rater,
                "attribute": attribute,
                "n": n,
                "longest_run": run,
                "modal_share": modal,
                "flagged": bool(flagged),
            }
        )
    return pd.DataFrame(rows, columns=["rater", "attribute", "n", "longest_run", "modal_share", "flagged"])


def consensus_agreement(
    ratings: pd.DataFrame, levels: Mapping[str, str], min_alpha: float = 0.4
) -> pd.DataFrame:
    """Each rater against the leave-one-out consensus of the others.

    The consensus of an image is the mode of the other raters' values (nominal) or their
    median (ordinal, interval, ratio). Agreement is Krippendorff's alpha between the rater
    and that consensus at the attribute's level; ``flagged`` when alpha < ``min_alpha``
    (default 0.4, well below Krippendorff's 0.667 floor for tentative conclusions).

    Returns rater, attribute, n_units (images with a consensus), alpha, exact (share equal
    to the consensus), flagged.
    """
    rows = []
    for attribute, level in levels.items():
        subset = ratings[ratings["attribute"] == attribute].drop_duplicates(["image_id", "rater"])
        if subset.empty:
            continue
        matrix = subset.pivot(index="image_id", columns="rater", values="value").astype(float)
        for rater in matrix.columns:
            others = matrix.drop(columns=rater)
            if level == "nominal":
                consensus = others.mode(axis=1)[0] if others.notna().any().any() else others.iloc[:, 0]
            else:
                consensus = others.median(axis=1)
            pair = pd.concat([matrix[rater], consensus], axis=1).dropna()
            alpha = krippendorff_alpha(pair, level) if len(pair) else float("nan")
            rows.append(
                {
                    "rater": rater,
                    "attribute": attribute,
                    "n_units": len(pair),
                    "alpha": alpha,
                    "exact": float((pair.iloc[:, 0] == pair.iloc[:, 1]).mean()) if len(pair) else np.nan,
                    "flagged": bool(alpha < min_alpha),
                }
            )
    return pd.DataFrame(rows, columns=["rater", "attribute", "n_units", "alpha", "exact", "flagged"])


def rater_flags(ratings: pd.DataFrame, levels: Mapping[str, str]) -> pd.DataFrame:
    """All flags per rater in one table: ``fast``, ``straight_lining``, ``low_agreement``.

    Returns rater and a ``flags`` column (a comma-separated list, empty when clean), with
    default thresholds of :func:`fast_answers`, :func:`straight_lining` and
    :func:`consensus_agreement`.
    """
    raters = sorted(ratings["rater"].unique(), key=str)
    flags: dict[str, list[str]] = {r: [] for r in raters}
    if "dwell_ms" in ratings and ratings["dwell_ms"].notna().any():
        for rater in fast_answers(ratings).query("flagged")["rater"]:
            flags[rater].append("fast")
    for rater, attribute in (
        straight_lining(ratings).query("flagged")[["rater", "attribute"]].itertuples(index=False)
    ):
        flags[rater].append(f"straight_lining:{attribute}")
    for rater, attribute in (
        consensus_agreement(ratings, levels).query("flagged")[["rater", "attribute"]].itertuples(index=False)
    ):
        flags[rater].append(f"low_agreement:{attribute}")
    return pd.DataFrame({"rater": raters, "flags": [", ".join(flags[r]) for r in raters]})
