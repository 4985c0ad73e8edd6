"""Scores of a comparative study per image, with intervals, reliability and provenance.

Pairwise: Bradley–Terry (:func:`itagger_lib.designs.bradley_terry`; a tie is half a win
each) with Wald intervals from the Fisher information, wins/losses/ties per image; split-half
reliability with raters as the halves' units when there are at least four raters (else
judgements), and the share of circular triads within raters. Best–worst: the counting score
``(best − worst) / shown`` and the multinomial-logit score
(:func:`~itagger_lib.designs.best_worst_mnl`) with intervals; split-half reliability of the
counting scores. Every call is recorded as a run (kind ``study_scores``) whose parameters —
the study, its design, the judgements used (count and newest id), the prior and seed — hash
to ``params_hash``: the same judgements scored the same way give the same hash.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from itagger_lib._version import __version__
from itagger_lib.comparisons.frames import choices_frame
from itagger_lib.comparisons.queue import comparative_study
from itagger_lib.db.models import Image
from itagger_lib.designs import (
    DEFAULT_PRIOR_SD,
    best_worst_counts,
    best_worst_mnl,
    best_worst_split_half,
    bradley_terry,
    circular_triads,
    pairwise_split_half,
)
from itagger_lib.errors import ArgumentError, ScienceError
from itagger_lib.runs import finish_run, hash_parameters, start_run

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.designs import SplitHalf
    from itagger_lib.ratings.studies import StudyRef

__all__ = ["score_study", "study_scores"]

SCORE_SOURCES = ("human", "vlm", "all")
MIN_RATER_CLUSTERS = 4


def _numbering(frame: pd.DataFrame, design: dict[str, Any]) -> tuple[np.ndarray, dict[int, int]]:
    images = np.asarray(design["images"], dtype=np.int64)
    return images, {int(i): k for k, i in enumerate(images)}


def study_scores(
    ctx: Context,
    study: StudyRef = None,
    source: str = "human",
    level: float = 0.95,
    n_splits: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Scores per image of a pairwise or best–worst study; see
    :meth:`itagger_lib.workspace.Workspace.study_scores`."""
    return score_study(ctx, study, source, level, n_splits, seed, record=True)


def score_study(
    ctx: Context,
    study: StudyRef = None,
    source: str = "human",
    level: float = 0.95,
    n_splits: int = 20,
    seed: int = 0,
    *,
    record: bool = True,
) -> pd.DataFrame:
    """:func:`study_scores`; with ``record=False`` no run is recorded (``run_id`` is ``None``;
    the parameters' hash is still given), for summaries that only look."""
    if source not in SCORE_SOURCES:
        raise ArgumentError(f"source must be one of {', '.join(SCORE_SOURCES)}, got {source!r}")
    info = comparative_study(ctx, study)
    choices = choices_frame(ctx, info.id, None if source == "all" else source)
    if choices.empty:
        raise ScienceError(
            f"study {info.name!r} has no {'' if source == 'all' else source + ' '}judgements yet; "
            "rate some trials in the tagging app (or with the VLM) first"
        )
    images, number = _numbering(choices, info.design)
    items = np.array([[number[int(i)] for i in s.split()] for s in choices["items"]], dtype=np.int64)
    raters = pd.factorize(choices["rater"])[0]
    clusters = raters if len(set(raters)) >= MIN_RATER_CLUSTERS else None
    parameters = {
        "study": info.name,
        "study_id": info.id,
        "design": info.design["type"],
        "attribute": info.design["attribute"],
        "source": source,
        "judgements": len(choices),
        "last_choice_id": int(choices["choice_id"].max()),
        "prior_sd": DEFAULT_PRIOR_SD,
        "level": float(level),
        "n_splits": int(n_splits),
        "seed": int(seed),
    }
    run_id = (
        start_run(ctx.engine, "study_scores", parameters, ctx.user, n_total=len(choices)) if record else None
    )
    try:
        if info.design["type"] == "pairwise":
            frame, reliability = _pairwise(
                choices, items, number, len(images), clusters, raters, level, n_splits, seed
            )
        else:
            frame, reliability = _best_worst(
                choices, items, number, len(images), clusters, level, n_splits, seed
            )
    except BaseException as error:
        if run_id is not None:
            finish_run(ctx.engine, run_id, status="failed", error=f"{type(error).__name__}: {error}")
        raise
    frame.insert(0, "image_id", images)
    with ctx.engine.connect() as connection:
        names = dict(connection.execute(sa.select(Image.id, Image.source_name)).all())
    frame.insert(1, "source_name", [names.get(int(i)) for i in images])
    frame = frame.set_index("image_id").sort_values("score", ascending=False)
    reliability["raters"] = len(set(raters))
    reliability["split_half_units"] = "raters" if clusters is not None else "judgements"
    if run_id is not None:
        finish_run(
            ctx.engine, run_id, status="succeeded", n_done=len(choices), details={"reliability": reliability}
        )
    frame.attrs.update(
        {
            "reliability": reliability,
            "provenance": {
                "run_id": run_id,
                "params_hash": hash_parameters(parameters),
                "package_version": __version__,
                "parameters": parameters,
            },
        }
    )
    return frame


def _pairwise(
    choices: pd.DataFrame,
    items: np.ndarray,
    number: dict[int, int],
    n: int,
    clusters: np.ndarray | None,
    raters: np.ndarray,
    level: float,
    n_splits: int,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    ties = choices["tie"].to_numpy(bool)
    best = np.array([-1 if t else number[int(b)] for b, t in zip(choices["best"], ties, strict=True)])
    outcomes = np.where(ties, 0.5, (items[:, 0] == best).astype(np.float64))
    fit = bradley_terry(items, outcomes, n_items=n)
    low, high = fit.intervals(level)
    winner = np.where(outcomes == 1, items[:, 0], items[:, 1])
    loser = np.where(outcomes == 1, items[:, 1], items[:, 0])
    decided = ~ties
    frame = pd.DataFrame(
        {
            "score": fit.scores,
            "se": fit.standard_errors,
            "low": low,
            "high": high,
            "shown": fit.judgements,
            "wins": np.bincount(winner[decided], minlength=n),
            "losses": np.bincount(loser[decided], minlength=n),
            "ties": np.bincount(items[ties].ravel(), minlength=n),
        }
    )
    half = _split_half(
        lambda: pairwise_split_half(
            items, outcomes, n_items=n, clusters=clusters, n_splits=n_splits, seed=seed
        )
    )
    triads = circular_triads(items, outcomes, n_items=n, raters=raters)
    reliability = {
        **half,
        "circular_triads": int(triads.circular),
        "judged_triads": int(triads.judged),
        "circular_triad_share": _number(triads.share),
        "components": int(fit.components),
        "level": float(level),
    }
    return frame, reliability


def _best_worst(
    choices: pd.DataFrame,
    items: np.ndarray,
    number: dict[int, int],
    n: int,
    clusters: np.ndarray | None,
    level: float,
    n_splits: int,
    seed: int,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    best = np.array([number[int(b)] for b in choices["best"]], dtype=np.int64)
    worst = np.array([number[int(w)] for w in choices["worst"]], dtype=np.int64)
    counts = best_worst_counts(items, best, worst, n_items=n)
    fit = best_worst_mnl(items, best, worst, n_items=n)
    low, high = fit.intervals(level)
    frame = pd.DataFrame(
        {
            "score": fit.scores,
            "se": fit.standard_errors,
            "low": low,
            "high": high,
            "shown": counts.shown,
            "best": counts.best,
            "worst": counts.worst,
            "count_score": counts.scores,
        }
    )
    half = _split_half(
        lambda: best_worst_split_half(
            items, best, worst, n_items=n, clusters=clusters, n_splits=n_splits, seed=seed
        )
    )
    reliability = {
        **half,
        "split_half_scores": "counts",
        "components": int(fit.components),
        "level": float(level),
    }
    return frame, reliability


def _split_half(compute: Callable[[], SplitHalf]) -> dict[str, Any]:
    """``split_half`` (or ``None`` with ``split_half_note`` saying why, when the study is too
    small for halves to share items: scores are still given)."""
    try:
        return {"split_half": _number(compute().reliability)}
    except ScienceError as error:
        return {"split_half": None, "split_half_note": str(error)}


def _number(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
