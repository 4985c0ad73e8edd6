"""Adjudication: a queue of images ordered by disagreement, and recorded consensus values.

A consensus value is a rating with ``source="adjudication"``: the adjudicator is its rater,
``rated_at`` says when, ``note`` says why. Agreement statistics leave such ratings out; the
exports carry them as their own source.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from itagger_lib.db.dml import inserted_id
from itagger_lib.db.models import Codebook, Rating, utcnow
from itagger_lib.errors import RatingError

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.workspace import Workspace


def queue(
    ws: Workspace,
    attribute: str | None = None,
    by: str = "disagreement",
    min_raters: int = 2,
    limit: int | None = 50,
) -> pd.DataFrame:
    """Images × attributes to adjudicate, most contested first.

    ``by="disagreement"`` orders by the spread (standard deviation) of the human ratings;
    ``by="vlm_conflict"`` by the distance between the VLM's mean and the humans' mean.
    Pairs that already have a consensus value are left out.
    """
    import pandas as pd

    if by not in {"disagreement", "vlm_conflict"}:
        raise ValueError(f"by={by!r}: use 'disagreement' or 'vlm_conflict'")
    query = sa.select(Rating.image_id, Rating.attribute, Rating.rater, Rating.source, Rating.value)
    if attribute:
        query = query.where(Rating.attribute == attribute)
    with ws.engine.connect() as connection:
        ratings = pd.read_sql(query, connection)
    columns = ["image_id", "attribute", "n_raters", "human_mean", "human_sd", "vlm_mean", "conflict"]
    if ratings.empty:
        return pd.DataFrame(columns=columns)
    decided = set(
        map(tuple, ratings.loc[ratings["source"] == "adjudication", ["image_id", "attribute"]].values)
    )
    human = ratings[ratings["source"].isin(["human", "import"])]
    vlm = ratings[ratings["source"] == "vlm"]
    stats = human.groupby(["image_id", "attribute"])["value"].agg(
        n_raters="count", human_mean="mean", human_sd=lambda v: v.std(ddof=0)
    )
    stats = stats.join(vlm.groupby(["image_id", "attribute"])["value"].mean().rename("vlm_mean"))
    stats["conflict"] = (stats["vlm_mean"] - stats["human_mean"]).abs()
    stats = stats[stats["n_raters"] >= (1 if by == "vlm_conflict" else min_raters)].reset_index()
    stats = stats[[(i, a) not in decided for i, a in zip(stats["image_id"], stats["attribute"])]]
    key = "human_sd" if by == "disagreement" else "conflict"
    stats = stats.dropna(subset=[key]).sort_values([key, "image_id"], ascending=[False, True])
    return stats[columns].head(limit) if limit else stats[columns]


def adjudicate(ws: Workspace, image: int | str, attribute: str, value: float, note: str | None = None) -> int:
    """Record the consensus value of ``attribute`` for ``image``; returns the rating id."""
    image_id = int(ws.image(image)["id"])
    with ws.engine.begin() as connection:
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
        from itagger_lib.codebook import get_codebook_by_id

        value = get_codebook_by_id(ws, int(codebook_id)).validate_value(attribute, value)
        existing = connection.execute(
            sa.select(Rating.id).where(
                Rating.image_id == image_id, Rating.attribute == attribute, Rating.source == "adjudication"
            )
        ).scalar()
        if existing is not None:
            connection.execute(
                sa.update(Rating)
                .where(Rating.id == existing)
                .values(value=float(value), rater=ws.user, note=note, updated_at=utcnow())
            )
            return int(existing)
        result = connection.execute(
            sa.insert(Rating).values(
                image_id=image_id,
                attribute=attribute,
                codebook_id=codebook_id,
                rater=ws.user,
                source="adjudication",
                value=float(value),
                mode="adjudication",
                note=note,
                rated_at=utcnow(),
            )
        )
        return inserted_id(result)
