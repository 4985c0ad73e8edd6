"""Recording human ratings: each answer written through from the workbench as it is given.

Every rating row carries its provenance: codebook id, source (human|vlm|import|
adjudication), mode (blind|assisted), study, assignment, the rater's position in their
queue, dwell time, session id, and whether it was a repeat or gold item. Ratings collected
elsewhere come in through :mod:`itagger_lib.ratings.imports`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.codebook import Codebook, get_codebook_by_id, resolve_codebook
from itagger_lib.db.models import Assignment, Rating, utcnow
from itagger_lib.errors import RatingError
from itagger_lib.images import resolve as resolve_image
from itagger_lib.ratings.queue import Item, set_status
from itagger_lib.ratings.studies import get_study

if TYPE_CHECKING:
    from itagger_lib._types import ImageRef
    from itagger_lib.codebook import Answer, CodebookRef
    from itagger_lib.context import Context

__all__ = ["SOURCES", "rater_ratings", "record_rating"]

SOURCES = ("human", "vlm", "import", "adjudication")
_RECORD = sa.text(
    "SELECT itagger_record_rating(:assignment, :image, :attribute, :codebook, :rater, :value, :text, "
    ":mode, :dwell, :session, :complete)"
)


def record_rating(
    ctx: Context,
    item: Item | ImageRef,
    attribute: str,
    value: Answer,
    rater: str | None = None,
    *,
    codebook: CodebookRef = None,
    mode: str | None = None,
    dwell_ms: int | None = None,
    session_id: str | None = None,
    complete: bool = True,
) -> int:
    """Store one answer, committed before returning; return the rating id.

    On PostgreSQL the row is written by ``itagger_record_rating`` (migration ``0005_roles``),
    which checks the answer against the codebook and the caller against the item again:
    taggers have no write grant on ``ratings``.

    ``item`` is an assignment (:class:`~itagger_lib.ratings.queue.Item`) or an image. A
    second answer by the same rater to the same item and attribute updates the first one
    (``updated_at`` set) instead of adding a row. With ``complete`` the assignment is marked
    done in the same transaction.
    """
    rater = rater or ctx.user
    needs_study = isinstance(item, Item) and (codebook is None or mode is None)
    study = get_study(ctx, item.study_id) if isinstance(item, Item) and needs_study else None
    if study is not None and codebook is None:
        book = get_codebook_by_id(ctx, study.codebook_id)
    else:
        book = resolve_codebook(ctx, codebook)
    attr = book.attribute(attribute)
    number, text = attr.to_columns(value)
    if isinstance(item, Item):
        if item.rater != rater:
            raise RatingError(
                f"assignment {item.id} (image {item.image_id}) belongs to {item.rater!r}, not {rater!r}"
            )
        image_id = item.image_id
        match: tuple[Any, ...] = (Rating.assignment_id == item.id,)
        extra = {
            "study_id": item.study_id,
            "assignment_id": item.id,
            "position": item.position,
            "is_repeat": item.is_repeat,
            "is_gold": item.is_gold,
            "repeat_index": 1 if item.is_repeat else 0,
        }
        mode = mode or (study.mode if study else "blind")
    else:
        image_id = resolve_image(ctx.engine, item)
        match = (Rating.image_id == image_id, Rating.assignment_id.is_(None), Rating.source == "human")
        extra = {}
        mode = mode or "blind"
    if mode not in ("blind", "assisted"):
        raise RatingError(f"mode {mode!r} is not blind|assisted")
    if ctx.engine.dialect.name == "postgresql":  # checked again by the database (migration 0005)
        with ctx.engine.begin() as connection:
            rating_id = connection.execute(
                _RECORD,
                {
                    "assignment": item.id if isinstance(item, Item) else None,
                    "image": image_id,
                    "attribute": attr.key,
                    "codebook": book.id,
                    "rater": rater,
                    "value": number,
                    "text": text,
                    "mode": mode,
                    "dwell": dwell_ms,
                    "session": session_id,
                    "complete": isinstance(item, Item) and complete,
                },
            ).scalar_one()
        return int(rating_id)
    now = utcnow()
    with ctx.engine.begin() as connection:
        existing = connection.execute(
            sa.select(Rating.id).where(
                *match, Rating.rater == rater, Rating.attribute == attr.key, Rating.codebook_id == book.id
            )
        ).scalar()
        if existing is not None:
            connection.execute(
                sa.update(Rating)
                .where(Rating.id == existing)
                .values(
                    value=number,
                    value_text=text,
                    mode=mode,
                    dwell_ms=dwell_ms,
                    session_id=session_id,
                    updated_at=now,
                )
            )
            rating_id = int(existing)
        else:
            rating_id = connection.execute(
                sa.insert(Rating)
                .values(
                    image_id=image_id,
                    attribute=attr.key,
                    codebook_id=book.id,
                    rater=rater,
                    source="human",
                    value=number,
                    value_text=text,
                    mode=mode,
                    dwell_ms=dwell_ms,
                    session_id=session_id,
                    rated_at=now,
                    **extra,
                )
                .returning(Rating.id)
            ).scalar_one()
        if isinstance(item, Item) and complete:
            set_status(ctx, item.id, "done", connection=connection)
    return int(rating_id)


def rater_ratings(
    ctx: Context, assignment_id: int, rater: str, codebook: Codebook | None = None
) -> dict[str, Answer | None]:
    """The rater's current answers for one item: ``{attribute: value}``.

    ``codebook`` (the study's, with its id) saves looking it up.
    """
    with ctx.engine.connect() as connection:
        row = connection.execute(
            sa.select(Assignment.study_id).where(Assignment.id == assignment_id)
        ).scalar_one()
        rows = connection.execute(
            sa.select(Rating.attribute, Rating.value, Rating.value_text, Rating.codebook_id).where(
                Rating.assignment_id == assignment_id, Rating.rater == rater
            )
        ).all()
    if not rows:
        return {}
    book = codebook if codebook is not None else get_codebook_by_id(ctx, get_study(ctx, int(row)).codebook_id)
    return {r.attribute: book.attribute(r.attribute).from_columns(r.value, r.value_text) for r in rows}
