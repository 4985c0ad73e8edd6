"""Rating studies: which images, how many raters each, which codebook, gold and repeat items.

A study gives every image ``raters_per_image`` open *slots* (rows of ``assignments``) that
the queue (:mod:`itagger_lib.ratings.queue`) hands out; its design (the share of repeats
for test–retest, gold items with known answers, the codebook) is recorded with it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa

from itagger_lib.codebook import resolve_codebook
from itagger_lib.db.models import Assignment, Image, Study, utcnow
from itagger_lib.errors import AssignmentError
from itagger_lib.images import resolve as resolve_image
from itagger_lib.images import select as select_images

if TYPE_CHECKING:
    from itagger_lib._types import ImageRef, ImageSelection
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context

__all__ = ["MODES", "StudyInfo", "StudyRef", "create_study", "get_study", "list_studies"]

MODES = ("blind", "assisted")


@dataclass(frozen=True)
class StudyInfo:
    """A study as the tagging code needs it."""

    id: int
    name: str
    codebook_id: int
    raters_per_image: int
    seed: int
    mode: str
    design: dict[str, Any]


def _study_info(row: Any) -> StudyInfo:
    return StudyInfo(
        id=int(row["id"]),
        name=row["name"],
        codebook_id=int(row["codebook_id"]),
        raters_per_image=int(row["raters_per_image"]),
        seed=int(row["seed"]),
        mode=row["mode"],
        design=dict(row["design"] or {}),
    )


def get_study(ctx: Context, study: StudyRef = None) -> StudyInfo:
    """A study by id, name or :class:`StudyInfo`; ``None`` gives the newest study."""
    if isinstance(study, StudyInfo):
        return study
    query = sa.select(Study).order_by(Study.id.desc()).limit(1)
    if isinstance(study, int):
        query = query.where(Study.id == study)
    elif study is not None:
        query = query.where(Study.name == str(study))
    with ctx.engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        what = "no study exists" if study is None else f"no study {study!r}"
        raise AssignmentError(
            f"{what} in this workspace; create one with ws.create_study('name') "
            "(after ws.ingest(folder) and, optionally, ws.load_codebook(path))"
        )
    return _study_info(row)


def list_studies(ctx: Context) -> list[StudyInfo]:
    """Every study, oldest first."""
    with ctx.engine.connect() as connection:
        rows = connection.execute(sa.select(Study).order_by(Study.id)).mappings().all()
    return [_study_info(r) for r in rows]


def create_study(
    ctx: Context,
    name: str,
    codebook: CodebookRef = None,
    raters_per_image: int = 3,
    seed: int | None = None,
    retest_share: float = 0.0,
    gold: Mapping[ImageRef, Mapping[str, Any]] | None = None,
    mode: str = "blind",
    images: ImageSelection = None,
    gold_every: int = 10,
) -> StudyInfo:
    """Create a study with ``raters_per_image`` open slots for every image.

    Parameters
    ----------
    name : unique study name.
    codebook : stored codebook (id, :class:`Codebook`, path or YAML); default: the newest
        stored one, else the shipped default is stored.
    raters_per_image : k ≥ 1, how many different raters rate each image.
    seed : seed of the per-rater image orders; chosen at random and recorded if omitted.
    retest_share : share in [0, 1) of a rater's done images shown again later (test–retest).
    gold : ``{image id or sha prefix: {attribute: value}}``, images with known answers shown
        to every rater once every ``gold_every`` items; values are validated.
    mode : ``"blind"`` (no machine answer shown) or ``"assisted"`` (the VLM answer is shown).
    images : image ids / sha prefixes (or a DataFrame indexed by id); default all images.
    gold_every : items between two gold items.
    """
    if mode not in MODES:
        raise AssignmentError(f"study {name!r}: mode {mode!r} is not one of {MODES}")
    if int(raters_per_image) < 1:
        raise AssignmentError(f"study {name!r}: raters_per_image must be ≥ 1, got {raters_per_image}")
    if not 0.0 <= float(retest_share) < 1.0:
        raise AssignmentError(f"study {name!r}: retest_share must be in [0, 1), got {retest_share}")
    book = resolve_codebook(ctx, codebook)
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    image_ids = select_images(ctx.engine, images)
    if image_ids is None:
        with ctx.engine.connect() as connection:
            image_ids = list(connection.execute(sa.select(Image.id).order_by(Image.id)).scalars())
    if not image_ids:
        raise AssignmentError(
            f"study {name!r}: the workspace has no images; ingest some first with ws.ingest(folder)"
        )
    gold_answers: dict[str, dict[str, Any]] = {}
    for ref, answers in (gold or {}).items():
        image_id = resolve_image(ctx.engine, ref)
        gold_answers[str(image_id)] = {k: book.validate_value(k, v) for k, v in answers.items()}
    design = {
        "retest_share": float(retest_share),
        "gold": gold_answers,
        "gold_every": int(gold_every),
        "codebook": f"{book.name} {book.version}",
    }
    gold_ids = {int(k) for k in gold_answers}
    with ctx.engine.begin() as connection:
        if connection.execute(sa.select(Study.id).where(Study.name == name)).first():
            raise AssignmentError(f"a study named {name!r} already exists; choose another name")
        study_id = connection.execute(
            sa.insert(Study)
            .values(
                name=name,
                codebook_id=book.id,
                raters_per_image=int(raters_per_image),
                seed=int(seed),
                mode=mode,
                design=design,
                created_at=utcnow(),
                created_by=ctx.user,
            )
            .returning(Study.id)
        ).scalar_one()
        rows = [
            {"study_id": study_id, "image_id": i, "slot": s, "kind": "normal", "status": "open"}
            for i in image_ids
            if i not in gold_ids
            for s in range(int(raters_per_image))
        ]
        for start in range(0, len(rows), 5000):
            connection.execute(sa.insert(Assignment), rows[start : start + 5000])
    return get_study(ctx, int(study_id))


#: A study: its id, its name, a :class:`StudyInfo`, or ``None`` for the newest study.
StudyRef: TypeAlias = "int | str | StudyInfo | None"
