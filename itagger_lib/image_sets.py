"""Named sets of images (tables ``image_sets`` and ``image_set_members``), saved from the explorer."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from itagger_lib.db.dml import inserted_id
from itagger_lib.db.models import Image, ImageSet, ImageSetMember, utcnow
from itagger_lib.errors import ArgumentError, ImageNotFoundError

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = ["image_sets", "members", "save_set"]


def members(name: str) -> sa.Select:
    """``SELECT image_id`` of the members of set ``name`` (for ``IN`` filters)."""
    return (
        sa.select(ImageSetMember.image_id)
        .join(ImageSet, ImageSet.id == ImageSetMember.set_id)
        .where(ImageSet.name == name)
    )


def save_set(ctx: Context, name: str, image_ids: Iterable[int]) -> int:
    """Store (or extend) a named set of images; returns the number of members."""
    if not name or not name.strip():
        raise ArgumentError("an image set needs a name")
    ids = sorted({int(i) for i in image_ids})
    with ctx.engine.begin() as connection:
        set_id = connection.execute(sa.select(ImageSet.id).where(ImageSet.name == name)).scalar()
        if set_id is None:
            set_id = inserted_id(
                connection.execute(
                    sa.insert(ImageSet).values(name=name, created_at=utcnow(), created_by=ctx.user)
                )
            )
        known = set(connection.execute(sa.select(Image.id).where(Image.id.in_(ids))).scalars())
        if len(known) < len(ids):
            missing = sorted(set(ids) - known)[:5]
            raise ImageNotFoundError(f"images {missing} are not in this workspace; nothing was saved")
        present = set(
            connection.execute(
                sa.select(ImageSetMember.image_id).where(ImageSetMember.set_id == set_id)
            ).scalars()
        )
        new = [{"set_id": set_id, "image_id": i} for i in ids if i not in present]
        if new:
            connection.execute(sa.insert(ImageSetMember), new)
        return len(present) + len(new)


def image_sets(ctx: Context) -> dict[str, list[int]]:
    """Every named set and its image ids."""
    with ctx.engine.connect() as connection:
        rows = connection.execute(
            sa.select(ImageSet.name, ImageSetMember.image_id)
            .join(ImageSetMember, ImageSetMember.set_id == ImageSet.id, isouter=True)
            .order_by(ImageSet.name, ImageSetMember.image_id)
        ).all()
    sets: dict[str, list[int]] = {}
    for name, image_id in rows:
        sets.setdefault(name, [])
        if image_id is not None:
            sets[name].append(image_id)
    return sets
