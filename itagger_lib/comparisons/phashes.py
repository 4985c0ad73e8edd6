"""Perceptual hashes in the database: computed at ingest, filled in for older images,
near-duplicate groups and group-aware train/test splits.

``images.phash`` holds :func:`itagger_lib.designs.phash` of the image's luminance decoded
at reduced size (:func:`itagger_lib.designs.read_grey_reduced`), as a signed 64-bit
integer with the same bits. Ingest computes it for every new image; an image ingested
before (or whose hash could not be computed then) gets it from :func:`fill_phashes`
(``itagger images phash``), which :func:`near_duplicates` and :func:`split` also call for
the images they need, so the first use fills the gaps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

from itagger_lib.db.models import Image
from itagger_lib.designs import (
    DEFAULT_THRESHOLD,
    group_split,
    near_duplicate_groups,
    phash,
    read_grey_reduced,
)
from itagger_lib.errors import ArgumentError, ImageError
from itagger_lib.images import select as select_images
from itagger_lib.runs import finish_run, record_failures, start_run

if TYPE_CHECKING:
    from pathlib import Path

    from itagger_lib._types import ImageSelection
    from itagger_lib.context import Context

__all__ = [
    "PhashReport",
    "file_phash",
    "fill_phashes",
    "image_hashes",
    "near_duplicate_column",
    "near_duplicates",
    "split",
    "to_signed",
    "to_unsigned",
]

SPLIT_BY = ("near_duplicate", "image")


def to_signed(value: int) -> int:
    """The 64-bit hash as the signed integer with the same bits (what the column stores)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    """The stored signed integer back as the hash in ``[0, 2**64)``."""
    return value + (1 << 64) if value < 0 else value


def file_phash(path: str | Path) -> int:
    """The stored form (signed) of the pHash of an image file; :class:`ImageError` if unreadable."""
    return to_signed(phash(read_grey_reduced(path)))


@dataclass
class PhashReport:
    """What :func:`fill_phashes` did: hashes computed, images that failed (with why), its run."""

    run_id: int | None = None
    computed: int = 0
    failed: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        text = f"pHash computed for {self.computed} image(s)"
        if self.failed:
            text += f", {len(self.failed)} failed (see `itagger runs failures {self.run_id}`)"
        return text


def fill_phashes(ctx: Context, images: ImageSelection = None) -> PhashReport:
    """Compute and store the pHash of every image (of ``images``) that has none.

    Files are read from the store. An image whose file is missing or cannot be decoded is
    recorded as a failure of the run (kind ``phash``) and left without a hash; the others
    are stored. Nothing is recomputed: a stored hash stays.
    """
    ids = select_images(ctx.engine, images)
    query = sa.select(Image.id, Image.sha256, Image.ext).where(Image.phash.is_(None)).order_by(Image.id)
    if ids is not None:
        query = query.where(Image.id.in_(ids))
    with ctx.engine.connect() as connection:
        missing = connection.execute(query).all()
    report = PhashReport()
    if not missing:
        return report
    report.run_id = start_run(ctx.engine, "phash", {"images": len(missing)}, ctx.user, n_total=len(missing))
    values: list[dict[str, int]] = []
    for row in missing:
        path = ctx.store.path_for(row.sha256, row.ext)
        try:
            values.append({"image_id": int(row.id), "value": file_phash(path)})
        except ImageError as error:
            report.failed.append((int(row.id), error.reason))
    table = sa.table("images", sa.column("id"), sa.column("phash"))
    statement = (
        sa.update(table).where(table.c.id == sa.bindparam("image_id")).values(phash=sa.bindparam("value"))
    )
    with ctx.engine.begin() as connection:
        if values:
            connection.execute(statement, values)
        record_failures(connection, report.run_id, [(str(i), i, reason) for i, reason in report.failed])
    report.computed = len(values)
    finish_run(
        ctx.engine,
        report.run_id,
        status=("partial" if values else "failed") if report.failed else "succeeded",
        n_done=report.computed,
        n_failed=len(report.failed),
    )
    return report


def image_hashes(ctx: Context, images: ImageSelection = None, *, fill: bool = True) -> pd.DataFrame:
    """Per image (indexed by id, in id order): ``source_name`` and ``phash`` (signed, or missing).

    With ``fill``, hashes not yet stored are computed first (:func:`fill_phashes`).
    """
    if fill:
        fill_phashes(ctx, images)
    ids = select_images(ctx.engine, images)
    query = sa.select(Image.id, Image.source_name, Image.phash).order_by(Image.id)
    if ids is not None:
        query = query.where(Image.id.in_(ids))
    with ctx.engine.connect() as connection:
        frame = pd.read_sql(query, connection, index_col="id")
    frame.index.name = "image_id"
    frame["phash"] = frame["phash"].astype("Int64")
    return frame


def _check_threshold(threshold: int) -> int:
    from itagger_lib.designs.near_duplicates import MAX_THRESHOLD

    if not isinstance(threshold, (int, np.integer)) or not 0 <= int(threshold) <= MAX_THRESHOLD:
        raise ArgumentError(
            f"threshold must be a whole number of bits from 0 to {MAX_THRESHOLD} (of 64), "
            f"got {threshold!r}; the default {DEFAULT_THRESHOLD} catches re-encodes and resizes"
        )
    return int(threshold)


def group_labels(hashes: pd.Series, threshold: int) -> np.ndarray:
    """Near-duplicate group of each entry of a signed-hash series; an image without a hash is
    its own group. Labels are numbered by first appearance."""
    known = hashes.notna().to_numpy()
    labels = np.arange(len(hashes), dtype=np.int64)
    if known.any():
        unsigned = hashes[known].astype("int64").to_numpy().view(np.uint64)
        labels[known] = near_duplicate_groups(unsigned, threshold) + len(hashes)
    return np.unique(labels, return_inverse=True)[1].astype(np.int64) if len(labels) else labels


def near_duplicate_column(ctx: Context, threshold: int = DEFAULT_THRESHOLD) -> pd.DataFrame:
    """``near_duplicate_group`` per image (indexed by id) from the stored hashes, computing none:
    what exports carry. Missing where an image has no hash yet (``itagger images phash``)."""
    frame = image_hashes(ctx, fill=False)
    groups = pd.Series(group_labels(frame["phash"], threshold), index=frame.index, dtype="Int64")
    groups[frame["phash"].isna()] = pd.NA
    return groups.rename("near_duplicate_group").to_frame()


def near_duplicates(
    ctx: Context, threshold: int = DEFAULT_THRESHOLD, images: ImageSelection = None
) -> pd.DataFrame:
    """Near-duplicate groups: per image, ``source_name``, ``group`` and ``group_size``.

    Two images whose pHashes differ in at most ``threshold`` bits (of 64) are near-duplicates;
    groups are the connected components (a chain of small edits joins its ends). Every image
    has a group (most of size 1); the frame is sorted by group size (largest first), group
    and image, and ``attrs`` holds the threshold. Hashes not yet stored are computed first;
    an image whose file cannot be read is its own group (its failure is in ``ws.failures()``).
    """
    threshold = _check_threshold(threshold)
    frame = image_hashes(ctx, images)
    frame["group"] = group_labels(frame["phash"], threshold)
    frame["group_size"] = frame.groupby("group")["group"].transform("size").astype("int64")
    frame = frame.reset_index().sort_values(
        ["group_size", "group", "image_id"], ascending=[False, True, True]
    )
    frame = frame.set_index("image_id")[["source_name", "group", "group_size", "phash"]]
    frame.attrs["threshold"] = threshold
    return frame


def split(
    ctx: Context,
    test_size: float = 0.2,
    seed: int = 0,
    by: str = "near_duplicate",
    threshold: int = DEFAULT_THRESHOLD,
    images: ImageSelection = None,
) -> pd.DataFrame:
    """A train/test split that keeps every near-duplicate group on one side.

    Returns per image (indexed by id): ``source_name``, ``group`` and ``split`` (``"train"``
    or ``"test"``). ``by="near_duplicate"`` keeps groups together (largest groups first, each
    to the side furthest below its target; :func:`itagger_lib.designs.group_split`);
    ``by="image"`` splits images independently (every image its own group), which lets
    near-duplicates leak between the sides. ``test_size`` is the test share in (0, 1);
    ``seed`` makes it reproducible.
    """
    if by not in SPLIT_BY:
        raise ArgumentError(f"by must be one of {', '.join(SPLIT_BY)}, got {by!r}")
    if not 0.0 < float(test_size) < 1.0:
        raise ArgumentError(f"test_size must be a share between 0 and 1, got {test_size!r}")
    if by == "near_duplicate":
        frame = near_duplicates(ctx, threshold, images)[["source_name", "group"]].sort_index()
    else:
        frame = image_hashes(ctx, images, fill=False)[["source_name"]]
        frame["group"] = np.arange(len(frame), dtype=np.int64)
    if len(frame) < 2:
        raise ArgumentError(f"a split needs at least 2 images, the selection has {len(frame)}")
    sides = group_split(frame["group"].to_numpy(), (1.0 - float(test_size), float(test_size)), seed=int(seed))
    frame["split"] = np.where(sides == 0, "train", "test")
    frame.attrs.update({"by": by, "test_size": float(test_size), "seed": int(seed), "threshold": threshold})
    return frame
