"""Creating studies of every design: Likert (one image, a scale), pairwise and best–worst.

:func:`create_study` is what ``ws.create_study`` calls: ``design="likert"`` hands over to
:func:`itagger_lib.ratings.studies.create_study` unchanged; ``"pairwise"`` and
``"best_worst"`` store a comparative study in the same ``studies`` table (so names, the
codebook and ``ws.create_study``'s other conventions are shared) with its design in
``studies.design``: the attribute asked about, the images in item order, their
near-duplicate groups, trials per rater, trial size and whether ties are allowed. Trials
are not stored up front: a rater's schedule depends only on the design and the rater's
number (:func:`itagger_lib.designs.rater_pairs`, :func:`~itagger_lib.designs.best_worst_design`),
so the queue (:mod:`.queue`) writes it when the rater first asks for a trial.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.codebook import resolve_codebook
from itagger_lib.comparisons.phashes import group_labels, image_hashes
from itagger_lib.db.models import Image, Study, utcnow
from itagger_lib.designs import DEFAULT_THRESHOLD, pairs_per_rater
from itagger_lib.errors import AssignmentError, ScienceError
from itagger_lib.images import select as select_images
from itagger_lib.ratings import studies as likert

if TYPE_CHECKING:
    from itagger_lib._types import ImageRef, ImageSelection
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context
    from itagger_lib.ratings.studies import StudyInfo

__all__ = ["COMPARATIVE", "DESIGNS", "create_study", "is_comparative", "trial_size"]

DESIGNS = ("likert", "pairwise", "best_worst")
#: Adaptive pairwise studies: the share of each rater's pairs from the balanced schedule
#: before pairs are chosen by information gain (``docs/designs.md``, "Adaptive").
BALANCED_SHARE = 0.5
COMPARATIVE = ("pairwise", "best_worst")


def is_comparative(info: StudyInfo) -> bool:
    """Whether a study is pairwise or best–worst (its trials are in ``comparison_trials``)."""
    return info.design.get("type") in COMPARATIVE


def trial_size(info: StudyInfo) -> int:
    """Images per trial: 2 for pairwise, the block size for best–worst."""
    return 2 if info.design.get("type") == "pairwise" else int(info.design["block_size"])


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
    *,
    design: str = "likert",
    question: str | None = None,
    pairs_per_image: float = 10.0,
    trials_per_image: float = 6.0,
    block_size: int = 4,
    avoid_near_duplicates: bool | str = True,
    threshold: int = DEFAULT_THRESHOLD,
    ties: bool = False,
    adaptive: bool = False,
) -> StudyInfo:
    """Create a study; see :meth:`itagger_lib.workspace.Workspace.create_study`."""
    if design not in DESIGNS:
        raise AssignmentError(f"study {name!r}: design {design!r} is not one of {', '.join(DESIGNS)}")
    if design == "likert":
        return likert.create_study(
            ctx, name, codebook, raters_per_image, seed, retest_share, gold, mode, images, gold_every
        )
    if retest_share or gold:
        raise AssignmentError(
            f"study {name!r}: retest_share and gold are for Likert studies; a {design} study has neither"
        )
    book = resolve_codebook(ctx, codebook)
    if question is None:
        raise AssignmentError(
            f"study {name!r}: a {design} study needs question=<attribute key> (one of {', '.join(book.keys)})"
        )
    attribute = book.attribute(question)
    raters = int(raters_per_image)
    if raters < 1:
        raise AssignmentError(f"study {name!r}: raters_per_image must be ≥ 1, got {raters_per_image}")
    avoid = {True: "block", False: None, "block": "block", "rater": "rater"}.get(avoid_near_duplicates, "?")
    if avoid == "?":
        raise AssignmentError(
            f"study {name!r}: avoid_near_duplicates must be True (never two of a group in one trial), "
            f'"rater" (one member of each group per rater) or False, got {avoid_near_duplicates!r}'
        )
    ids = select_images(ctx.engine, images)
    if ids is None:
        with ctx.engine.connect() as connection:
            ids = list(connection.execute(sa.select(Image.id).order_by(Image.id)).scalars())
    size = 2 if design == "pairwise" else int(block_size)
    if design == "best_worst" and not 3 <= size <= 8:
        raise AssignmentError(
            f"study {name!r}: block_size must be from 3 to 8 (4 or 5 usual), got {block_size}"
        )
    if len(ids) < size:
        raise AssignmentError(
            f"study {name!r}: a {design} study needs at least {size} images, the selection has {len(ids)}; "
            "ingest more with ws.ingest(folder)"
        )
    groups: list[int] | None = None
    if avoid is not None:
        hashes = image_hashes(ctx, ids)["phash"].reindex(ids)
        groups = group_labels(hashes, int(threshold)).tolist()
    if design == "pairwise":
        if not pairs_per_image > 0:
            raise AssignmentError(f"study {name!r}: pairs_per_image must be > 0, got {pairs_per_image}")
        per_rater = pairs_per_rater(len(ids), float(pairs_per_image), raters)
        per_image = {"pairs_per_image": float(pairs_per_image)}
    else:
        if not trials_per_image > 0:
            raise AssignmentError(f"study {name!r}: trials_per_image must be > 0, got {trials_per_image}")
        per_rater = math.ceil(len(ids) * float(trials_per_image) / (size * raters))
        per_image = {"trials_per_image": float(trials_per_image)}
    if adaptive and design != "pairwise":
        raise AssignmentError(f"study {name!r}: adaptive schedules are for pairwise studies only")
    if seed is None:
        seed = random.SystemRandom().randrange(1, 2**31)
    description = {
        "type": design,
        "attribute": attribute.key,
        "prompt": comparison_prompt(design, attribute.label, attribute.definition),
        "images": [int(i) for i in ids],
        "groups": groups,
        "avoid": avoid,
        "threshold": int(threshold),
        "trials_per_rater": int(per_rater),
        "block_size": size,
        "ties": bool(ties) and design == "pairwise",
        "adaptive": bool(adaptive),
        "balanced_trials": math.ceil(per_rater * BALANCED_SHARE) if adaptive else int(per_rater),
        "codebook": f"{book.name} {book.version}",
        **per_image,
    }
    from itagger_lib.comparisons.queue import rater_schedule

    try:  # an impossible design is refused before it is stored
        rater_schedule(description, int(seed), 0)
    except ScienceError as error:
        hint = ' or avoid_near_duplicates="rater"' if avoid == "block" else ""
        raise AssignmentError(
            f"study {name!r}: {error} (with {len(ids)} images, {per_rater} trials of {size} per rater); "
            f"ask for fewer {'pairs' if design == 'pairwise' else 'trials'} per image, more raters{hint}"
        ) from error
    with ctx.engine.begin() as connection:
        if connection.execute(sa.select(Study.id).where(Study.name == name)).first():
            raise AssignmentError(f"a study named {name!r} already exists; choose another name")
        study_id = connection.execute(
            sa.insert(Study)
            .values(
                name=name,
                codebook_id=book.id,
                raters_per_image=raters,
                seed=int(seed),
                mode=mode,
                design=description,
                created_at=utcnow(),
                created_by=ctx.user,
            )
            .returning(Study.id)
        ).scalar_one()
    return likert.get_study(ctx, int(study_id))


def comparison_prompt(design: str, label: str, definition: str | None) -> str:
    """The question shown above a trial."""
    what = label.lower()
    if design == "pairwise":
        text = f"Which of these two places shows more {what}?"
    else:
        text = f"Which of these places shows the most {what}, and which the least?"
    return f"{text} ({definition})" if definition else text
