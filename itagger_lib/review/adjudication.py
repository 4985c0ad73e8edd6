"""Adjudication: a queue of images ordered by disagreement, and recorded consensus values.

Part of the review room, after agreement (:mod:`.agreement`) and monitoring (:mod:`.monitor`).

A consensus value is a rating with ``source="adjudication"``: the adjudicator is its rater,
``rated_at`` says when, ``note`` says why. Agreement statistics leave such ratings out; the
exports carry them as their own source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from itagger_lib.codebook import get_codebook_by_id
from itagger_lib.db.dml import inserted_id
from itagger_lib.db.models import Codebook, Rating, utcnow
from itagger_lib.errors import ArgumentError, RatingError
from itagger_lib.images import resolve as resolve_image
from itagger_lib.review.agreement import first_presentations
from itagger_lib.review.coefficients import ratings_matrix
from itagger_lib.review.disagreement import expected_disagreement, unit_disagreement
from itagger_lib.review.reading import load_levels
from itagger_lib.vlm.primary import select_primary

if TYPE_CHECKING:
    from itagger_lib._types import ImageRef
    from itagger_lib.codebook import Answer
    from itagger_lib.context import Context

__all__ = ["QUEUE_COLUMNS", "adjudicate", "queue"]


QUEUE_COLUMNS = [
    "image_id", "attribute", "level", "n_raters", "human_median", "human_mean", "human_sd",
    "disagreement", "relative_disagreement", "vlm_median", "vlm_mean", "conflict",
]  # fmt: skip


def queue(
    ctx: Context,
    attribute: str | None = None,
    by: str = "disagreement",
    min_raters: int = 2,
    limit: int | None = 50,
) -> pd.DataFrame:
    """Images × attributes to adjudicate, most contested first.

    ``by="disagreement"`` orders by the human raters' disagreement at the attribute's level
    of measurement (from its codebook; attributes without one count as interval):
    ``disagreement`` is :func:`~itagger_lib.review.disagreement.unit_disagreement` (nominal:
    share of rater pairs that disagree; ordinal/interval/ratio: mean squared difference of
    rater pairs, 2 × variance) and the queue sorts by ``relative_disagreement``, that divided
    by the attribute's expected disagreement
    (:func:`~itagger_lib.review.disagreement.expected_disagreement`), so attributes of
    different levels and scales rank together (1 = as much as two random ratings).
    ``by="vlm_conflict"`` orders by the distance between the VLM and the humans: nominal,
    the share of (human, VLM) rating pairs that differ; ordinal, the distance between the
    VLM's and the humans' medians; interval and ratio, between their means. Human ratings
    are first presentations (repeats left out), VLM ratings those of each model's primary
    run (:mod:`itagger_lib.vlm.primary`); pairs that already have a consensus value are
    left out.

    Each summary is shown only where it is valid for the level of measurement: the medians
    (``human_median``, ``vlm_median``) for ordinal, interval and ratio attributes; the means
    and the SD (``human_mean``, ``human_sd``, ``vlm_mean``) for interval and ratio only;
    nominal attributes get neither (category codes have no order or distance).
    """
    if by not in {"disagreement", "vlm_conflict"}:
        raise ArgumentError(f"by={by!r}: use 'disagreement' or 'vlm_conflict'")
    query = sa.select(
        Rating.image_id,
        Rating.attribute,
        Rating.rater,
        Rating.source,
        Rating.value,
        Rating.is_repeat,
        Rating.repeat_index,
        Rating.run_id,
    ).where(Rating.value.is_not(None))
    if attribute:
        query = query.where(Rating.attribute == attribute)
    with ctx.engine.connect() as connection:
        ratings = pd.read_sql(query, connection)
    if ratings.empty:
        return pd.DataFrame(columns=QUEUE_COLUMNS)
    levels, _ = load_levels(ctx)
    decided = ratings.loc[ratings["source"] == "adjudication", ["image_id", "attribute"]]
    first = first_presentations(ratings)
    human = first[first["source"].isin(["human", "import"])]
    vlm, _ = select_primary(ctx, first[first["source"] == "vlm"])  # each model's primary run
    parts = [
        _attribute_queue(key, levels.get(key, "interval"), group, vlm[vlm["attribute"] == key])
        for key, group in human.groupby("attribute", sort=True)
    ]
    stats = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=QUEUE_COLUMNS)
    stats = stats[stats["n_raters"] >= (1 if by == "vlm_conflict" else min_raters)]
    done = stats.set_index(["image_id", "attribute"]).index.isin(pd.MultiIndex.from_frame(decided))
    stats = stats[~done]
    keys = ["relative_disagreement", "disagreement"] if by == "disagreement" else ["conflict"]
    stats = stats.dropna(subset=keys[:1]).sort_values(
        [*keys, "image_id", "attribute"], ascending=[False] * len(keys) + [True, True]
    )
    stats = stats[QUEUE_COLUMNS].reset_index(drop=True)
    return stats.head(limit) if limit else stats


def _attribute_queue(attribute: str, level: str, human: pd.DataFrame, vlm: pd.DataFrame) -> pd.DataFrame:
    """Per image of one attribute: counts, human spread, level-aware disagreement, VLM conflict."""
    matrix = ratings_matrix(human)
    stats = pd.DataFrame(index=matrix.index)
    stats["n_raters"] = matrix.notna().sum(axis=1)
    ordered = level != "nominal"  # a median needs an order
    metric = level in ("interval", "ratio")  # a mean and an SD need distances
    stats["human_median"] = matrix.median(axis=1) if ordered else np.nan
    stats["human_mean"] = matrix.mean(axis=1) if metric else np.nan
    stats["human_sd"] = matrix.std(axis=1, ddof=0) if metric else np.nan
    stats["disagreement"] = unit_disagreement(matrix, level)
    expected = expected_disagreement(matrix, level)
    # no variation anywhere (expected 0 or undefined): every unit agrees, relative 0
    scale = expected if expected > 0 else np.inf
    stats["relative_disagreement"] = stats["disagreement"] / scale
    machine = vlm.groupby("image_id")["value"]
    stats["vlm_median"] = machine.median() if ordered else np.nan
    stats["vlm_mean"] = machine.mean() if metric else np.nan
    if metric:
        stats["conflict"] = (stats["vlm_mean"] - stats["human_mean"]).abs()
    elif ordered:
        stats["conflict"] = (stats["vlm_median"] - stats["human_median"]).abs()
    else:
        pairs = vlm[["image_id", "value"]].merge(
            human[["image_id", "value"]], on="image_id", suffixes=("_vlm", "")
        )
        stats["conflict"] = (pairs["value_vlm"] != pairs["value"]).groupby(pairs["image_id"]).mean()
    stats.insert(0, "level", level)
    stats.insert(0, "attribute", attribute)
    stats.index.name = "image_id"
    return stats.reset_index()


def adjudicate(ctx: Context, image: ImageRef, attribute: str, value: Answer, note: str | None = None) -> int:
    """Record the consensus value of ``attribute`` for ``image``; returns the rating id.

    ``value`` is an answer as the codebook allows it (a number, or a categorical label).
    """
    image_id = resolve_image(ctx.engine, image)
    with ctx.engine.begin() as connection:
        codebook_id = connection.execute(
            sa.select(Rating.codebook_id)
            .where(Rating.image_id == image_id, Rating.attribute == attribute)
            .order_by(Rating.id.desc())
            .limit(1)
        ).scalar()
        if codebook_id is None:
            codebook_id = connection.execute(
                sa.select(Codebook.id).order_by(Codebook.id.desc()).limit(1)
            ).scalar()
        if codebook_id is None:
            raise RatingError(f"attribute {attribute!r}: no codebook is loaded; run ws.load_codebook() first")
        # stored as the write path stores answers: a categorical label as its level index
        # plus the label in value_text, a number as itself
        number, text = get_codebook_by_id(ctx, int(codebook_id)).attribute(attribute).to_columns(value)
        existing = connection.execute(
            sa.select(Rating.id).where(
                Rating.image_id == image_id, Rating.attribute == attribute, Rating.source == "adjudication"
            )
        ).scalar()
        if existing is not None:
            connection.execute(
                sa.update(Rating)
                .where(Rating.id == existing)
                .values(value=number, value_text=text, rater=ctx.user, note=note, updated_at=utcnow())
            )
            return int(existing)
        result = connection.execute(
            sa.insert(Rating).values(
                image_id=image_id,
                attribute=attribute,
                codebook_id=codebook_id,
                rater=ctx.user,
                source="adjudication",
                value=number,
                value_text=text,
                mode="adjudication",
                note=note,
                rated_at=utcnow(),
            )
        )
        return inserted_id(result)
