"""Store consistency: rows whose file is missing or changed, and files with no row."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from itagger_lib.db.models import Image
from itagger_lib.store import sha256_file

if TYPE_CHECKING:
    from itagger_lib.context import Context


@dataclass
class StoreReport:
    """The result of :func:`check_store`; ``ok`` when nothing is wrong."""

    images: int = 0
    files: int = 0
    missing: list[str] = field(default_factory=list)
    corrupted: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    rehashed: bool = True

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupted or self.orphans)

    def __str__(self) -> str:
        head = (
            f"store check: {self.images} images, {self.files} files — "
            f"{len(self.missing)} missing, {len(self.corrupted)} changed since ingest, "
            f"{len(self.orphans)} files with no row: {'OK' if self.ok else 'PROBLEMS'}"
        )
        lines = [head]
        lines += [f"  MISSING  {sha}" for sha in self.missing[:50]]
        lines += [f"  CHANGED  {sha} (bytes no longer match the hash)" for sha in self.corrupted[:50]]
        lines += [f"  ORPHAN   {path} (re-ingest its source or remove it)" for path in self.orphans[:50]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(str(self))}</pre>"


def check_store(ctx: Context, rehash: bool = True) -> StoreReport:
    """Compare the ``images`` table with the files in the store.

    With ``rehash`` every file is read and hashed again (slow on large stores, but it is the
    only way to notice bytes that changed on disk).
    """
    report = StoreReport(rehashed=rehash)
    with ctx.engine.connect() as connection:
        rows = connection.execute(sa.select(Image.id, Image.sha256, Image.ext)).all()
    report.images = len(rows)
    known = set()
    for _image_id, sha, ext in rows:
        known.add((sha, ext))
        path = ctx.store.path_for(sha, ext)
        if not path.is_file():
            report.missing.append(sha)
        elif rehash and sha256_file(path) != sha:
            report.corrupted.append(sha)
    for sha, ext, path in ctx.store.iter_files():
        report.files += 1
        if (sha, ext) not in known:
            report.orphans.append(str(path))
    return report
