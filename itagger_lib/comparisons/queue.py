"""The queue of a comparative study: each rater's trials, the next one, and the choices made.

A rater's first request writes their whole schedule (``comparison_trials``, status
``open``): rater number ``r`` is the count of raters the study had before (taken under a
per-study lock: PostgreSQL ``pg_advisory_xact_lock``, SQLite ``BEGIN IMMEDIATE``), and the
schedule is :func:`itagger_lib.designs.rater_pairs` or
:func:`~itagger_lib.designs.best_worst_design` of ``(images, trials per rater, r, groups,
seed)``, so raters ``0 … R-1`` together see every image equally often within ±1 and no
rater gets a pair twice. The next trial is the rater's first ``open`` one by position;
:func:`record_choice` stores the judgement (one per trial; a second answer replaces the
first, as going back in the app does) and marks the trial ``done``; :func:`skip_trial`
marks it ``skipped``. A VLM is a rater like any other (its name is its rater name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import sqlalchemy as sa

from itagger_lib.db.models import ComparisonChoice, ComparisonTrial, utcnow
from itagger_lib.designs import (
    DEFAULT_PRIOR_SD,
    adaptive_pairs,
    best_worst_design,
    bradley_terry,
    rater_pairs,
)
from itagger_lib.errors import AssignmentError, RatingError
from itagger_lib.ratings.studies import StudyInfo, get_study

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.ratings.studies import StudyRef

__all__ = [
    "Trial",
    "choices_of",
    "comparative_study",
    "extend_adaptive",
    "get_trial",
    "lock_study",
    "next_trial",
    "rater_schedule",
    "rater_trials",
    "record_choice",
    "reopen_trial",
    "skip_trial",
    "trial_progress",
]

SOURCES = ("human", "vlm")


@dataclass(frozen=True)
class Trial:
    """One trial of a rater: the images shown, left to right, and where it stands."""

    id: int
    study_id: int
    rater: str
    position: int
    items: tuple[int, ...]
    status: str


def _trial(row: Any) -> Trial:
    return Trial(
        id=int(row["id"]),
        study_id=int(row["study_id"]),
        rater=row["rater"],
        position=int(row["position"]),
        items=tuple(int(i) for i in row["items"]),
        status=row["status"],
    )


def comparative_study(ctx: Context, study: StudyRef) -> StudyInfo:
    """The study, which must be pairwise or best–worst."""
    info = get_study(ctx, study)
    if info.design.get("type") not in ("pairwise", "best_worst"):
        raise AssignmentError(
            f"study {info.name!r} is a Likert study (one image at a time, no trials); "
            "create a comparative one with ws.create_study(name, design='pairwise', question=...)"
        )
    return info


def rater_schedule(design: Mapping[str, Any], seed: int, rater_index: int) -> list[list[int]]:
    """The image ids of each trial of rater number ``rater_index``, in the order shown."""
    ids = np.asarray(design["images"], dtype=np.int64)
    groups = None if design.get("groups") is None else np.asarray(design["groups"], dtype=np.int64)
    avoid: Literal["block", "rater"] = "rater" if design.get("avoid") == "rater" else "block"
    n = int(design["trials_per_rater"])
    if design["type"] == "pairwise":
        numbers = rater_pairs(len(ids), n, rater=rater_index, groups=groups, avoid=avoid, seed=seed)
        numbers = numbers[: int(design.get("balanced_trials", n))]  # a prefix is balanced too
    else:
        numbers = best_worst_design(
            len(ids), n, int(design["block_size"]), rater=rater_index, groups=groups, avoid=avoid, seed=seed
        )
    return ids[numbers].tolist()


def lock_study(connection: sa.Connection, study_id: int) -> None:
    """Serialise schedule writes of one study until the transaction ends (PostgreSQL: through
    the owner's function of migration ``0006_studies``, as taggers take no advisory lock)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        connection.execute(sa.text("SELECT itagger_lock_comparison_study(:s)"), {"s": study_id})


def _ensure_schedule(ctx: Context, info: StudyInfo, rater: str) -> None:
    """Write the rater's schedule if they have none yet."""
    mine = sa.select(sa.func.count()).where(
        ComparisonTrial.study_id == info.id, ComparisonTrial.rater == rater
    )
    with ctx.engine.connect() as connection:
        if connection.execute(mine).scalar_one():
            return
    with ctx.engine.connect() as connection:
        lock_study(connection, info.id)
        try:
            if connection.execute(mine).scalar_one():
                connection.rollback()
                return
            index = connection.execute(
                sa.select(sa.func.count(sa.distinct(ComparisonTrial.rater))).where(
                    ComparisonTrial.study_id == info.id
                )
            ).scalar_one()
            now = utcnow()
            rows = [
                {
                    "study_id": info.id,
                    "rater": rater,
                    "rater_index": int(index),
                    "position": position,
                    "items": items,
                    "status": "open",
                    "created_at": now,
                }
                for position, items in enumerate(rater_schedule(info.design, info.seed, int(index)), start=1)
            ]
            for start in range(0, len(rows), 5000):
                connection.execute(sa.insert(ComparisonTrial), rows[start : start + 5000])
            connection.commit()
        except BaseException:
            connection.rollback()
            raise


def next_trial(ctx: Context, study: StudyRef, rater: str | None = None) -> Trial | None:
    """The rater's next open trial (their schedule is written on first use); ``None`` when done.

    In an adaptive study, a rater who has judged their balanced pairs gets the next batch
    chosen by information gain (:func:`extend_adaptive`).
    """
    info = comparative_study(ctx, study)
    rater = rater or ctx.user
    _ensure_schedule(ctx, info, rater)
    found = _first_open(ctx, info, rater)
    if found is None and info.design.get("adaptive"):
        extend_adaptive(ctx, info, rater)
        found = _first_open(ctx, info, rater)
    return found


def _first_open(ctx: Context, info: StudyInfo, rater: str) -> Trial | None:
    query = (
        sa.select(ComparisonTrial)
        .where(
            ComparisonTrial.study_id == info.id,
            ComparisonTrial.rater == rater,
            ComparisonTrial.status == "open",
        )
        .order_by(ComparisonTrial.position)
        .limit(1)
    )
    with ctx.engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    return None if row is None else _trial(row)


def extend_adaptive(ctx: Context, info: StudyInfo, rater: str) -> int:
    """Add the rater's next batch of an adaptive study; returns how many pairs were added.

    The batch (at most ``n // 2`` pairs, fewer when the rater's quota is nearly full) is
    :func:`itagger_lib.designs.adaptive_pairs` under the Bradley–Terry fit of every human
    judgement of the study so far, never a pair the study already holds for anyone
    (judged or scheduled) and never two near-duplicates (Glickman & Jensen 2005).
    """
    design = info.design
    ids = np.asarray(design["images"], dtype=np.int64)
    number = {int(i): k for k, i in enumerate(ids)}
    groups = None if design.get("groups") is None else np.asarray(design["groups"], dtype=np.int64)
    with ctx.engine.connect() as connection:
        lock_study(connection, info.id)
        try:
            rows = connection.execute(
                sa.select(ComparisonTrial.rater, ComparisonTrial.items, ComparisonTrial.rater_index).where(
                    ComparisonTrial.study_id == info.id
                )
            ).all()
            mine = [r for r in rows if r.rater == rater]
            left = int(design["trials_per_rater"]) - len(mine)
            if not mine or left <= 0:
                connection.rollback()
                return 0
            judged = connection.execute(
                sa.select(ComparisonTrial.items, ComparisonChoice.best_image_id, ComparisonChoice.tie)
                .join(ComparisonChoice, ComparisonChoice.trial_id == ComparisonTrial.id)
                .where(ComparisonTrial.study_id == info.id, ComparisonChoice.source == "human")
            ).all()
            pairs = np.array([[number[int(i)] for i in r.items] for r in judged], dtype=np.int64).reshape(
                -1, 2
            )
            outcomes = np.array(
                [0.5 if r.tie else float(int(r.best_image_id) == int(r.items[0])) for r in judged]
            )
            if len(judged):
                fit = bradley_terry(pairs, outcomes, n_items=len(ids))
                scores, errors = fit.scores, fit.standard_errors
            else:  # nothing judged yet (all skipped): every pair is as informative
                scores, errors = np.zeros(len(ids)), np.full(len(ids), DEFAULT_PRIOR_SD)
            held = np.array([[number[int(i)] for i in r.items] for r in rows], dtype=np.int64).reshape(-1, 2)
            size = min(left, len(ids) // 2)
            batch = adaptive_pairs(
                scores, errors, size, judged=held, groups=groups, seed=info.seed + len(rows)
            )
            now = utcnow()
            start = max(r.rater_index for r in mine)
            position = len(mine)
            values = [
                {
                    "study_id": info.id, "rater": rater, "rater_index": start, "position": position + k,
                    "items": [int(ids[a]), int(ids[b])], "status": "open", "created_at": now,
                }
                for k, (a, b) in enumerate(batch.tolist(), start=1)
            ]  # fmt: skip
            if values:
                connection.execute(sa.insert(ComparisonTrial), values)
            connection.commit()
            return len(values)
        except BaseException:
            connection.rollback()
            raise


def get_trial(ctx: Context, trial_id: int) -> Trial:
    """One trial by id."""
    with ctx.engine.connect() as connection:
        row = (
            connection.execute(sa.select(ComparisonTrial).where(ComparisonTrial.id == trial_id))
            .mappings()
            .first()
        )
    if row is None:
        raise AssignmentError(f"no comparison trial with id {trial_id}")
    return _trial(row)


def rater_trials(ctx: Context, study: StudyRef, rater: str) -> list[Trial]:
    """The rater's trials in schedule order (open, done and skipped)."""
    info = comparative_study(ctx, study)
    query = (
        sa.select(ComparisonTrial)
        .where(ComparisonTrial.study_id == info.id, ComparisonTrial.rater == rater)
        .order_by(ComparisonTrial.position)
    )
    with ctx.engine.connect() as connection:
        return [_trial(r) for r in connection.execute(query).mappings()]


def _check_choice(
    info: StudyInfo, trial: Trial, best: int | None, worst: int | None, tie: bool
) -> tuple[int | None, int | None]:
    where = f"study {info.name!r}, trial {trial.id} (images {', '.join(map(str, trial.items))})"
    if info.design["type"] == "pairwise":
        if tie:
            if not info.design.get("ties"):
                raise RatingError(f"{where}: this study does not allow ties; choose one of the two images")
            return None, None
        if best not in trial.items:
            raise RatingError(f"{where}: the chosen image {best!r} is not one of the two shown")
        return int(best), int(next(i for i in trial.items if i != best))
    if tie:
        raise RatingError(f"{where}: a best–worst trial has no ties; choose a best and a worst image")
    if best not in trial.items or worst not in trial.items or best == worst:
        raise RatingError(
            f"{where}: best ({best!r}) and worst ({worst!r}) must be two different images of the trial"
        )
    return int(best), int(worst)


def record_choice(
    ctx: Context,
    trial: Trial | int,
    best: int | None = None,
    worst: int | None = None,
    *,
    tie: bool = False,
    rater: str | None = None,
    source: str = "human",
    dwell_ms: int | None = None,
    session_id: str | None = None,
    run_id: int | None = None,
    vlm_call_id: int | None = None,
) -> int:
    """Store the judgement of a trial and mark it done, in one transaction; return its id.

    Pairwise: ``best`` is the image chosen (the other is stored as ``worst``), or
    ``tie=True`` where the study allows ties. Best–worst: ``best`` and ``worst`` are two
    different images of the trial. A second judgement of the same trial replaces the first
    (``updated_at`` set). The trial must be the rater's.
    """
    trial = get_trial(ctx, trial) if isinstance(trial, int) else trial
    rater = rater or ctx.user
    if trial.rater != rater:
        raise RatingError(f"trial {trial.id} belongs to {trial.rater!r}, not {rater!r}")
    if source not in SOURCES:
        raise RatingError(f"trial {trial.id}: source {source!r} is not one of {', '.join(SOURCES)}")
    info = comparative_study(ctx, trial.study_id)
    best_id, worst_id = _check_choice(info, trial, best, worst, bool(tie))
    now = utcnow()
    values = {
        "best_image_id": best_id,
        "worst_image_id": worst_id,
        "tie": bool(tie),
        "dwell_ms": dwell_ms,
        "session_id": session_id,
        "run_id": run_id,
        "vlm_call_id": vlm_call_id,
    }
    with ctx.engine.begin() as connection:
        existing = connection.execute(
            sa.select(ComparisonChoice.id).where(ComparisonChoice.trial_id == trial.id)
        ).scalar()
        if existing is None:
            choice_id = connection.execute(
                sa.insert(ComparisonChoice)
                .values(
                    trial_id=trial.id,
                    study_id=trial.study_id,
                    rater=rater,
                    source=source,
                    chosen_at=now,
                    **values,
                )
                .returning(ComparisonChoice.id)
            ).scalar_one()
        else:
            choice_id = existing
            connection.execute(
                sa.update(ComparisonChoice)
                .where(ComparisonChoice.id == existing)
                .values(updated_at=now, **values)
            )
        connection.execute(
            sa.update(ComparisonTrial)
            .where(ComparisonTrial.id == trial.id)
            .values(status="done", completed_at=now)
        )
    return int(choice_id)


def skip_trial(ctx: Context, trial: Trial | int, rater: str | None = None) -> None:
    """Mark a trial ``skipped`` (it is not asked again and has no judgement)."""
    trial = get_trial(ctx, trial) if isinstance(trial, int) else trial
    rater = rater or ctx.user
    if trial.rater != rater:
        raise RatingError(f"trial {trial.id} belongs to {trial.rater!r}, not {rater!r}")
    with ctx.engine.begin() as connection:
        connection.execute(
            sa.update(ComparisonTrial)
            .where(ComparisonTrial.id == trial.id)
            .values(status="skipped", completed_at=utcnow())
        )


def reopen_trial(ctx: Context, trial: Trial | int) -> Trial:
    """Make a trial ``open`` again (going back in the app); its judgement stays until replaced."""
    trial = get_trial(ctx, trial) if isinstance(trial, int) else trial
    with ctx.engine.begin() as connection:
        connection.execute(
            sa.update(ComparisonTrial)
            .where(ComparisonTrial.id == trial.id)
            .values(status="open", completed_at=None)
        )
    return get_trial(ctx, trial.id)


def trial_progress(ctx: Context, study: StudyRef, rater: str) -> dict[str, int]:
    """``{"done": n, "total": N, "remaining": m}`` for the rater (skipped trials count as done)."""
    info = comparative_study(ctx, study)
    query = (
        sa.select(ComparisonTrial.status, sa.func.count())
        .where(ComparisonTrial.study_id == info.id, ComparisonTrial.rater == rater)
        .group_by(ComparisonTrial.status)
    )
    with ctx.engine.connect() as connection:
        counts = dict(connection.execute(query).all())
    total = sum(counts.values()) or int(info.design["trials_per_rater"])
    if info.design.get("adaptive"):
        total = max(total, int(info.design["trials_per_rater"]))
    done = counts.get("done", 0) + counts.get("skipped", 0)
    return {"done": int(done), "total": int(total), "remaining": int(total - done)}


def choices_of(ctx: Context, trials: Sequence[Trial]) -> dict[int, dict[str, Any]]:
    """The stored judgement of each of these trials that has one, by trial id."""
    if not trials:
        return {}
    query = sa.select(ComparisonChoice).where(ComparisonChoice.trial_id.in_([t.id for t in trials]))
    with ctx.engine.connect() as connection:
        return {int(r["trial_id"]): dict(r) for r in connection.execute(query).mappings()}
