"""The tagging queue: who rates which image of a study next, and where each rater stands.

A rater's next item is, in order:

1. an item already claimed by this rater and not finished (resume after a reload);
2. a *gold* item (an image with a known answer) once every ``gold_every`` items;
3. a *repeat* item (an image this rater already rated, shown again for test–retest
   reliability) while the rater's repeats are below ``retest_share`` × normal items done;
4. a new open slot, claimed atomically, of an image this rater has not got.

On PostgreSQL the claim is one call of ``itagger_claim_next`` (migration ``0005_roles``), a
``SECURITY DEFINER`` function that serialises claims per rater (an advisory lock taken as
the owner; taggers may not take advisory locks) and takes slots with ``SELECT … FOR UPDATE
SKIP LOCKED``, so that concurrent raters never wait on each other and never take the same
slot, and that checks the caller: a tagger claims only for themselves and only what the
design makes due (taggers have no write grant on ``assignments``). On SQLite the claim
runs in ``BEGIN IMMEDIATE``.

Each rater sees the images in an order of their own: images are sorted by the affine
permutation ``(a·id + b) mod p`` with ``p = 2³¹ − 1`` and ``a, b`` drawn from
SHA-256(study seed, rater), so the order is random per rater, reproducible from the
recorded seed, and computable inside the database.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.models import Assignment, utcnow
from itagger_lib.errors import AssignmentError
from itagger_lib.ratings.studies import StudyInfo, get_study

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.ratings.studies import StudyRef

__all__ = [
    "Item",
    "get_item",
    "next_assignment",
    "progress",
    "rater_items",
    "rater_permutation",
    "set_status",
    "upcoming_images",
]

_P = 2_147_483_647  # 2**31 - 1, prime


@dataclass(frozen=True)
class Item:
    """One item of a rater's queue (an ``assignments`` row)."""

    id: int
    study_id: int
    image_id: int
    rater: str
    position: int
    kind: str
    status: str

    @property
    def is_repeat(self) -> bool:
        return self.kind == "repeat"

    @property
    def is_gold(self) -> bool:
        return self.kind == "gold"


def rater_permutation(seed: int, rater: str) -> tuple[int, int]:
    """``(a, b)`` of the rater's image order ``(a·id + b) mod (2³¹ − 1)``; ``1 ≤ a < p``."""
    digest = hashlib.sha256(f"{seed}:{rater}".encode()).digest()
    a = int.from_bytes(digest[:8], "big") % (_P - 1) + 1
    b = int.from_bytes(digest[8:16], "big") % _P
    return a, b


def _item(row: Any) -> Item:
    return Item(
        id=int(row["id"]),
        study_id=int(row["study_id"]),
        image_id=int(row["image_id"]),
        rater=row["rater"],
        position=int(row["position"]),
        kind=row["kind"],
        status=row["status"],
    )


def _claim_new(connection: sa.Connection, info: StudyInfo, rater: str, position: int) -> Item | None:
    a, b = rater_permutation(info.seed, rater)
    mine = sa.select(Assignment.image_id).where(Assignment.study_id == info.id, Assignment.rater == rater)
    query = (
        sa.select(Assignment.id)
        .where(
            Assignment.study_id == info.id,
            Assignment.status == "open",
            Assignment.kind == "normal",
            Assignment.image_id.not_in(mine),
        )
        .order_by(
            (
                sa.cast(Assignment.image_id, sa.BigInteger) * sa.literal(a, sa.BigInteger)
                + sa.literal(b, sa.BigInteger)
            )
            % sa.literal(_P, sa.BigInteger),
            Assignment.slot,
        )
        .limit(1)
    )
    slot_id = connection.execute(query).scalar()
    if slot_id is None:
        return None
    connection.execute(
        sa.update(Assignment)
        .where(Assignment.id == slot_id)
        .values(rater=rater, position=position, status="assigned", assigned_at=utcnow())
    )
    row = connection.execute(sa.select(Assignment).where(Assignment.id == slot_id)).mappings().one()
    return _item(row)


def _add_item(
    connection: sa.Connection, info: StudyInfo, rater: str, image_id: int, kind: str, position: int
) -> Item:
    new_id = connection.execute(
        sa.insert(Assignment)
        .values(
            study_id=info.id,
            image_id=image_id,
            slot=-1,
            rater=rater,
            position=position,
            kind=kind,
            status="assigned",
            assigned_at=utcnow(),
        )
        .returning(Assignment.id)
    ).scalar_one()
    row = connection.execute(sa.select(Assignment).where(Assignment.id == new_id)).mappings().one()
    return _item(row)


def _due_special(rows: list[Any], info: StudyInfo, rater: str) -> tuple[str, int] | None:
    """``(kind, image_id)`` of the gold or repeat item due now, or ``None`` (pure).

    ``rows``: the rater's items of the study (``image_id``, ``kind``, ``status``).
    """
    n_normal_done = sum(1 for r in rows if r.kind == "normal" and r.status == "done")
    gold = [int(k) for k in info.design.get("gold", {})]
    had_gold = {r.image_id for r in rows if r.kind == "gold"}
    every = max(1, int(info.design.get("gold_every", 10)))
    pending_gold = [g for g in gold if g not in had_gold]
    if pending_gold and n_normal_done >= len(had_gold) * every:
        rng = random.Random(f"{info.seed}:{rater}:gold")
        rng.shuffle(pending_gold)
        return "gold", pending_gold[0]
    share = float(info.design.get("retest_share", 0.0))
    if share > 0:
        repeated = {r.image_id for r in rows if r.kind == "repeat"}
        if len(repeated) < int(n_normal_done * share):
            done = sorted(r.image_id for r in rows if r.kind == "normal" and r.status == "done")
            candidates = [i for i in done if i not in repeated]
            if candidates:
                rng = random.Random(f"{info.seed}:{rater}:repeat:{len(repeated)}")
                return "repeat", rng.choice(candidates)
    return None


def _own_rows(connection: sa.Connection, info: StudyInfo, rater: str) -> list[Any]:
    return list(
        connection.execute(
            sa.select(Assignment.image_id, Assignment.kind, Assignment.status).where(
                Assignment.study_id == info.id, Assignment.rater == rater
            )
        ).all()
    )


def _special(connection: sa.Connection, info: StudyInfo, rater: str, position: int) -> Item | None:
    """A gold or repeat item due now, or ``None``."""
    due = _due_special(_own_rows(connection, info, rater), info, rater)
    if due is None:
        return None
    return _add_item(connection, info, rater, due[1], due[0], position)


def _next_postgres(ctx: Context, info: StudyInfo, rater: str) -> Item | None:
    """The next item through ``itagger_claim_next`` (migration 0005), which checks the caller
    and the design and takes the per-rater lock as the owner; the gold or repeat item due is
    chosen here (as on SQLite) and checked there."""
    with ctx.engine.connect() as connection:
        due = _due_special(_own_rows(connection, info, rater), info, rater)
        connection.rollback()
        kind, image = due if due is not None else (None, None)
        row = (
            connection.execute(
                sa.text("SELECT * FROM itagger_claim_next(:study, :rater, :kind, :image)"),
                {"study": info.id, "rater": rater, "kind": kind, "image": image},
            )
            .mappings()
            .first()
        )
        connection.commit()
    return None if row is None else _item(row)


def next_assignment(ctx: Context, study: StudyRef, rater: str | None = None) -> Item | None:
    """The rater's next item (resume, gold, repeat, or a newly claimed slot); ``None`` when done.

    Committed before returning: a claimed slot belongs to the rater until rated or skipped.
    """
    info = get_study(ctx, study)
    rater = rater or ctx.user
    if ctx.engine.dialect.name == "postgresql":
        return _next_postgres(ctx, info, rater)
    with ctx.engine.connect() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            row = (
                connection.execute(
                    sa.select(Assignment)
                    .where(
                        Assignment.study_id == info.id,
                        Assignment.rater == rater,
                        Assignment.status == "assigned",
                    )
                    .order_by(Assignment.position)
                    .limit(1)
                )
                .mappings()
                .first()
            )
            if row is not None:
                connection.rollback()
                return _item(row)
            position = (
                connection.execute(
                    sa.select(sa.func.coalesce(sa.func.max(Assignment.position), 0)).where(
                        Assignment.study_id == info.id, Assignment.rater == rater
                    )
                ).scalar_one()
                or 0
            ) + 1
            item = _special(connection, info, rater, position) or _claim_new(
                connection, info, rater, position
            )
            connection.commit()
            return item
        except BaseException:
            connection.rollback()
            raise


def get_item(ctx: Context, assignment_id: int) -> Item:
    """One item of a queue by its assignment id."""
    with ctx.engine.connect() as connection:
        row = (
            connection.execute(sa.select(Assignment).where(Assignment.id == assignment_id)).mappings().first()
        )
    if row is None:
        raise AssignmentError(f"no assignment with id {assignment_id}")
    return _item(row)


def rater_items(ctx: Context, study: StudyRef, rater: str) -> list[Item]:
    """The rater's items in the order they were given (done, skipped and open)."""
    info = get_study(ctx, study)
    with ctx.engine.connect() as connection:
        rows = (
            connection.execute(
                sa.select(Assignment)
                .where(Assignment.study_id == info.id, Assignment.rater == rater)
                .order_by(Assignment.position)
            )
            .mappings()
            .all()
        )
    return [_item(r) for r in rows]


def set_status(
    ctx: Context, assignment_id: int, status: str, connection: sa.Connection | None = None
) -> None:
    """Mark an item ``done`` or ``skipped`` (or ``assigned`` again when the rater goes back)."""
    if status not in ("assigned", "done", "skipped"):
        raise AssignmentError(f"assignment {assignment_id}: status {status!r} is not assigned|done|skipped")
    if ctx.engine.dialect.name == "postgresql":  # checked by the database (migration 0005)
        call = sa.text("SELECT itagger_set_status(:a, :s)")
        if connection is not None:
            connection.execute(call, {"a": assignment_id, "s": status})
            return
        with ctx.engine.begin() as conn:
            conn.execute(call, {"a": assignment_id, "s": status})
        return
    statement = (
        sa.update(Assignment)
        .where(Assignment.id == assignment_id)
        .values(status=status, completed_at=None if status == "assigned" else utcnow())
    )
    if connection is not None:
        connection.execute(statement)
        return
    with ctx.engine.begin() as conn:
        conn.execute(statement)


def progress(ctx: Context, study: StudyRef, rater: str) -> dict[str, int]:
    """``{"done": n, "total": N, "remaining": m}`` for the rater.

    ``total`` = items finished by the rater + images still available to them (open slots of
    images they have not got, at most one per image); ``remaining = total - done``.
    """
    info = get_study(ctx, study)
    with ctx.engine.connect() as connection:
        finished = connection.execute(
            sa.select(sa.func.count()).where(
                Assignment.study_id == info.id,
                Assignment.rater == rater,
                Assignment.status.in_(("done", "skipped")),
            )
        ).scalar_one()
        pending = connection.execute(
            sa.select(sa.func.count()).where(
                Assignment.study_id == info.id, Assignment.rater == rater, Assignment.status == "assigned"
            )
        ).scalar_one()
        mine = sa.select(Assignment.image_id).where(Assignment.study_id == info.id, Assignment.rater == rater)
        available = connection.execute(
            sa.select(sa.func.count(sa.distinct(Assignment.image_id))).where(
                Assignment.study_id == info.id,
                Assignment.status == "open",
                Assignment.kind == "normal",
                Assignment.image_id.not_in(mine),
            )
        ).scalar_one()
    total = int(finished + pending + available)
    return {"done": int(finished), "total": total, "remaining": total - int(finished)}


def upcoming_images(ctx: Context, study: StudyRef, rater: str, n: int = 3) -> list[int]:
    """The images the rater would most likely be given next (for prefetching; claims nothing)."""
    info = get_study(ctx, study)
    a, b = rater_permutation(info.seed, rater)
    mine = sa.select(Assignment.image_id).where(Assignment.study_id == info.id, Assignment.rater == rater)
    order = (
        sa.cast(Assignment.image_id, sa.BigInteger) * sa.literal(a, sa.BigInteger)
        + sa.literal(b, sa.BigInteger)
    ) % sa.literal(_P, sa.BigInteger)
    query = (
        sa.select(Assignment.image_id, sa.func.min(order).label("o"))
        .where(
            Assignment.study_id == info.id,
            Assignment.status == "open",
            Assignment.kind == "normal",
            Assignment.image_id.not_in(mine),
        )
        .group_by(Assignment.image_id)
        .order_by("o")
        .limit(n)
    )
    with ctx.engine.connect() as connection:
        return [int(r.image_id) for r in connection.execute(query)]
