"""The images of a workspace: one resolver from a reference to an image id, the table, a row.

Every room that takes an image from a caller (the workspace, science runs, VLM runs,
studies, ratings, imports, adjudication, the inspector) resolves it here, so an image is
named the same way everywhere and a bad reference gets the same message:

* an id: a Python or NumPy integer, a whole float (``3.0`` from a spreadsheet) or a string
  of fewer than 8 digits;
* at least 8 hex digits of its SHA-256 (a unique prefix);
* with ``by_name=True``, the file name it was ingested from (``source_name``), where that
  name is unique in the workspace.

The rules are one function (:func:`_match`) over a source of candidates: SQL queries for a
few references, or an :class:`ImageIndex` read once for many (a ratings import of 100 000
rows resolves without a query per row).
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import sqlalchemy as sa

from itagger_lib.db.models import Image
from itagger_lib.errors import ImageNotFoundError, remedy

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

    from itagger_lib._types import ImageRef, ImageSelection
    from itagger_lib.store import ImageStore

__all__ = [
    "MIN_PREFIX",
    "ImageIndex",
    "collections",
    "file_path",
    "resolve",
    "row",
    "rows",
    "select",
    "table",
]

MIN_PREFIX = 8  # hex digits of a SHA-256 that name an image
_BULK = 64  # more references than this: read the index once instead of querying each


def _where() -> str:
    return remedy("see ws.images()", "see `itagger images`")


class _Candidates(Protocol):
    """Where :func:`_match` looks images up."""

    def has_id(self, image_id: int) -> bool: ...

    def with_prefix(self, prefix: str) -> list[int]:
        """Ids of at most two images whose SHA-256 starts with ``prefix``."""
        ...

    def named(self, name: str) -> list[int]:
        """Ids of the images ingested from a file called ``name``."""
        ...


class ImageIndex:
    """Every image's id, SHA-256 and source file name, read in one query.

    For resolving many references at once (:func:`select` of a long list, a ratings
    import): each lookup is a set probe or a binary search, not a query.
    """

    def __init__(self, rows: Iterable[tuple[int, str, str]]) -> None:
        self._ids: set[int] = set()
        self._hashes: list[tuple[str, int]] = []
        self._names: dict[str, list[int]] = {}
        for image_id, sha256, name in rows:
            self._ids.add(int(image_id))
            self._hashes.append((sha256, int(image_id)))
            self._names.setdefault(name, []).append(int(image_id))
        self._hashes.sort()

    @classmethod
    def read(cls, engine: Engine) -> ImageIndex:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(Image.id, Image.sha256, Image.source_name)).all()
        return cls((int(r.id), r.sha256, r.source_name) for r in rows)

    def __len__(self) -> int:
        return len(self._ids)

    def has_id(self, image_id: int) -> bool:
        return image_id in self._ids

    def with_prefix(self, prefix: str) -> list[int]:
        start = bisect.bisect_left(self._hashes, (prefix, -1))
        return [image_id for sha, image_id in self._hashes[start : start + 2] if sha.startswith(prefix)]

    def named(self, name: str) -> list[int]:
        return list(self._names.get(name, ()))


class _Queries:
    """:class:`_Candidates` answered by the database, on one open connection."""

    def __init__(self, connection: sa.Connection) -> None:
        self.connection = connection

    def has_id(self, image_id: int) -> bool:
        query = sa.select(Image.id).where(Image.id == image_id)
        return self.connection.execute(query).first() is not None

    def with_prefix(self, prefix: str) -> list[int]:
        query = sa.select(Image.id).where(Image.sha256.startswith(prefix)).order_by(Image.sha256).limit(2)
        return [int(i) for i in self.connection.execute(query).scalars()]

    def named(self, name: str) -> list[int]:
        query = sa.select(Image.id).where(Image.source_name == name).order_by(Image.id)
        return [int(i) for i in self.connection.execute(query).scalars()]


def _integer(ref: object) -> int | None:
    """``ref`` as an image id when it is a number, else ``None``; a fractional number raises."""
    if isinstance(ref, bool):
        raise ImageNotFoundError(f"image {ref!r} is a truth value, not an image id")
    if isinstance(ref, numbers.Integral):
        return int(ref)
    if isinstance(ref, numbers.Real):
        value = float(ref)
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise ImageNotFoundError(f"image id {ref!r} is not in this workspace ({_where()})")
    return None


def _match(candidates: _Candidates, ref: object, by_name: bool) -> int:
    """The rules of an image reference (see the module docstring)."""
    accepted = "an image id, at least 8 hex digits of its SHA-256"
    if by_name:
        accepted += ", or the file name it was ingested from"
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        raise ImageNotFoundError(f"image is empty; give {accepted}")
    number = _integer(ref)
    if number is not None:
        if candidates.has_id(number):
            return number
        raise ImageNotFoundError(
            f"image id {number} is not in this workspace: no image has that id ({_where()})"
        )
    text = str(ref).strip()
    if text.isdigit() and len(text) < MIN_PREFIX and candidates.has_id(int(text)):
        return int(text)
    if by_name:
        named = candidates.named(text)
        if len(named) == 1:
            return named[0]
        if named:
            raise ImageNotFoundError(
                f"image file name {text!r} matches {len(named)} images (ids "
                f"{', '.join(map(str, named[:5]))}); give the image id or its SHA-256 instead"
            )
    prefix = text.lower()
    if len(prefix) >= MIN_PREFIX and all(c in "0123456789abcdef" for c in prefix):
        matches = candidates.with_prefix(prefix)
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ImageNotFoundError(f"SHA-256 prefix {text!r} matches several images; give more digits")
    raise ImageNotFoundError(f"image {text!r} is not in this workspace (give {accepted}; {_where()})")


def _scalar(ref: Any) -> Any:
    """A NumPy scalar as the Python value it holds (text and bytes as they are)."""
    return ref.item() if hasattr(ref, "item") and not isinstance(ref, str | bytes) else ref


def resolve(source: Engine | ImageIndex, ref: ImageRef, *, by_name: bool = False) -> int:
    """The id of the image ``ref`` names.

    Parameters
    ----------
    source
        The workspace's engine (a query or two), or an :class:`ImageIndex` read once for
        many references.
    ref
        An image id, at least 8 hex digits of its SHA-256, or with ``by_name`` the file
        name it was ingested from.

    Raises
    ------
    ImageNotFoundError
        Naming the reference and what to give instead: no such image, an ambiguous prefix
        or file name, a prefix shorter than 8 digits.
    """
    if isinstance(source, ImageIndex):
        return _match(source, _scalar(ref), by_name)
    with source.connect() as connection:
        return _match(_Queries(connection), _scalar(ref), by_name)


def _references(images: ImageSelection) -> list[Any]:
    if isinstance(images, str | bytes) or not isinstance(images, Iterable):
        return [images]
    index = getattr(images, "index", None)  # a DataFrame or Series indexed by image id
    if index is not None and not isinstance(images, list | tuple):
        return list(index)
    return list(images)


def select(engine: Engine, images: ImageSelection) -> list[int] | None:
    """The ids of a selection of images, in the order given, each once; ``None`` for ``None``
    (every image: callers query them as they need).

    Raises :class:`ImageNotFoundError` for the first reference that names no image.
    """
    if images is None:
        return None
    refs = [_scalar(ref) for ref in _references(images)]
    if len(refs) > _BULK:
        index = ImageIndex.read(engine)
        ids = [_match(index, ref, False) for ref in refs]
    else:
        with engine.connect() as connection:
            queries = _Queries(connection)
            ids = [_match(queries, ref, False) for ref in refs]
    return list(dict.fromkeys(ids))


def row(engine: Engine, ref: ImageRef) -> dict[str, Any]:
    """One image's row (id, sha256, ext, format, width, height, bytes, source, collection, ...)."""
    image_id = resolve(engine, ref)
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(Image).where(Image.id == image_id)).mappings().one())


def rows(engine: Engine, image_ids: Iterable[int] | None = None) -> Iterator[dict[str, Any]]:
    """``id, sha256, ext, width, height`` of the given images (all when ``None``), by id."""
    query = sa.select(Image.id, Image.sha256, Image.ext, Image.width, Image.height).order_by(Image.id)
    if image_ids is not None:
        query = query.where(Image.id.in_(list(image_ids)))
    with engine.connect() as connection:
        yield from (dict(r) for r in connection.execute(query).mappings().all())


def table(engine: Engine) -> pd.DataFrame:
    """Every image, one row each, indexed by id."""
    import pandas as pd

    with engine.connect() as connection:
        return pd.read_sql(sa.select(Image).order_by(Image.id), connection, index_col="id")


def file_path(engine: Engine, store: ImageStore, ref: ImageRef) -> Path:
    """Where the file of image ``ref`` lives in ``store`` (whether or not it is there)."""
    image = row(engine, ref)
    return store.path_for(image["sha256"], image["ext"])


def collections(engine: Engine) -> list[str]:
    """The names of the collections images were ingested into, sorted."""
    with engine.connect() as connection:
        query = sa.select(Image.collection).where(Image.collection.is_not(None)).distinct()
        return sorted(c for c in connection.execute(query).scalars() if c)
