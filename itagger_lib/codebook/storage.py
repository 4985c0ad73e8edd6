"""Codebooks in the workspace database: each ``(name, version)`` stored once, never edited.

:func:`store_codebook` keeps a version and refuses a changed content under a version that
exists (bump ``version`` instead); :func:`resolve_codebook` is the one resolver from what a
caller passes (``None``, an id, a :class:`Codebook`, YAML) to a stored codebook, used by
studies, imports, VLM runs and the workspace.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import yaml

from itagger_lib.codebook.model import TYPES, Attribute, Codebook, CodebookRef, CodebookSource, Level
from itagger_lib.codebook.parsing import DEFAULT_CODEBOOK, default_codebook_text, not_utf8, parse_codebook
from itagger_lib.db.dml import insert_ignore
from itagger_lib.db.models import Codebook as CodebookRow
from itagger_lib.db.models import utcnow
from itagger_lib.errors import CodebookError, remedy

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = [
    "attribute_from_definition",
    "get_codebook",
    "get_codebook_by_id",
    "list_codebooks",
    "resolve_codebook",
    "store_codebook",
    "stored_attributes",
]


def _source_text(source: CodebookSource) -> tuple[str, str]:
    """``(yaml_text, name_for_messages)`` of a path, YAML text, mapping or the default."""
    if source is None:
        return default_codebook_text(), DEFAULT_CODEBOOK
    if isinstance(source, Codebook):
        text = yaml.safe_dump(source.to_dict(), sort_keys=False, allow_unicode=True)
        return text, f"codebook {source.name}"
    if isinstance(source, Mapping):
        return yaml.safe_dump(dict(source), sort_keys=False, allow_unicode=True), "<mapping>"
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        path = Path(source)
        try:
            return path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise CodebookError(f"cannot read the codebook ({exc.strerror})", source=str(path)) from exc
        except UnicodeDecodeError as exc:
            raise CodebookError(not_utf8(exc), source=str(path)) from None
    if isinstance(source, str):
        return source, "<text>"
    raise CodebookError(f"cannot load a codebook from {type(source).__name__}; give a path or YAML text")


@functools.lru_cache(maxsize=64)
def _parse_stored(text: str, source: str) -> Codebook:
    # stored versions never change, and a Codebook is immutable: parse each one once per process
    return parse_codebook(text, source=source)


def _from_row(row: Any) -> Codebook:
    codebook = _parse_stored(row["source_text"], f"codebook {row['name']} {row['version']}")
    return replace(codebook, id=int(row["id"]))


def store_codebook(ctx: Context, source: CodebookSource = None) -> Codebook:
    """Store a codebook version; return it with its database ``id``.

    ``source`` is a path, YAML text, a :class:`Codebook`, or ``None`` for the shipped
    default. Storing identical content again returns the existing version; a different
    content under an existing ``name`` + ``version`` raises :class:`CodebookError` (bump
    ``version``: a version that may have ratings is never edited in place).
    """
    text, where = _source_text(source)
    codebook = parse_codebook(text, source=where)
    with ctx.engine.begin() as connection:
        insert_ignore(
            connection,
            CodebookRow,
            [
                {
                    "name": codebook.name,
                    "version": codebook.version,
                    "content_hash": codebook.content_hash,
                    "source_text": text,
                    "definition": codebook.to_dict(),
                    "created_at": utcnow(),
                    "created_by": ctx.user,
                }
            ],
        )
        row = (
            connection.execute(
                sa.select(CodebookRow.id, CodebookRow.content_hash).where(
                    CodebookRow.name == codebook.name, CodebookRow.version == codebook.version
                )
            )
            .mappings()
            .one()
        )
    if row["content_hash"] != codebook.content_hash:
        raise CodebookError(
            f"codebook {codebook.name!r} version {codebook.version!r} is already stored with a "
            "different content; a stored version is never edited in place — bump `version:` in "
            "the file (e.g. to a new number) and load it again",
            source=where,
        )
    return replace(codebook, id=int(row["id"]))


def get_codebook(ctx: Context, name: str | None = None, version: str | None = None) -> Codebook:
    """A stored codebook: the newest one, the newest of ``name``, or ``name`` + ``version``."""
    query = sa.select(CodebookRow).order_by(CodebookRow.id.desc()).limit(1)
    if name is not None:
        query = query.where(CodebookRow.name == name)
    if version is not None:
        query = query.where(CodebookRow.version == str(version))
    with ctx.engine.connect() as connection:
        row = connection.execute(query).mappings().first()
    if row is None:
        what = "no codebook is stored" if name is None else f"no codebook {name!r}"
        if version is not None:
            what += f" version {version!r}"
        raise CodebookError(
            f"{what} in this workspace; load one with "
            + remedy(
                "ws.load_codebook(path) (ws.load_codebook() loads the default)",
                "`itagger codebook load FILE` (without FILE: the default)",
            )
        )
    return _from_row(row)


def get_codebook_by_id(ctx: Context, codebook_id: int) -> Codebook:
    """The stored codebook with this database id."""
    with ctx.engine.connect() as connection:
        query = sa.select(CodebookRow).where(CodebookRow.id == codebook_id)
        row = connection.execute(query).mappings().first()
    if row is None:
        raise CodebookError(f"no codebook with id {codebook_id} in this workspace")
    return _from_row(row)


def list_codebooks(ctx: Context) -> list[dict[str, Any]]:
    """Stored codebooks (id, name, version, content hash, created), oldest first."""
    columns = [
        CodebookRow.id,
        CodebookRow.name,
        CodebookRow.version,
        CodebookRow.content_hash,
        CodebookRow.created_at,
        CodebookRow.created_by,
    ]
    with ctx.engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(*columns).order_by(CodebookRow.id)).mappings()]


def resolve_codebook(ctx: Context, codebook: CodebookRef = None) -> Codebook:
    """A stored codebook from what a caller passed: ``None`` (the newest, or the default
    stored now), a codebook id, a stored :class:`Codebook`, or a YAML path or text to store."""
    if codebook is None:
        try:
            return get_codebook(ctx)
        except CodebookError:
            return store_codebook(ctx)
    if isinstance(codebook, int):
        return get_codebook_by_id(ctx, codebook)
    if isinstance(codebook, Codebook) and codebook.id is not None:
        return codebook
    return store_codebook(ctx, codebook)


def attribute_from_definition(definition: Mapping[str, Any]) -> Attribute | None:
    """One attribute of a stored definition (``codebooks.definition``), or ``None`` for an
    unknown type. Levels may be mappings (``{"value": …, "label": …}``) or bare values."""
    kind = str(definition.get("type"))
    if kind not in TYPES:
        return None
    levels = tuple(
        Level(**{k: v for k, v in level.items() if k in ("value", "label", "hotkey", "definition")})
        if isinstance(level, Mapping)
        else Level(level)
        for level in definition.get("levels") or ()
    )
    key = str(definition["key"])
    return Attribute(
        key=key,
        label=str(definition.get("label") or key),
        question=str(definition.get("question") or ""),
        type=kind,
        levels=levels,
        min=definition.get("min"),
        max=definition.get("max"),
    )


def stored_attributes(ctx: Context) -> dict[str, Attribute]:
    """Every attribute of the stored codebooks by key; where versions differ, the newest
    stored codebook that defines the key wins (as for agreement's levels of measurement).

    Read from the stored definitions, so it answers for every codebook a rating references.
    """
    with ctx.engine.connect() as connection:
        definitions = connection.execute(sa.select(CodebookRow.definition).order_by(CodebookRow.id)).scalars()
        attributes: dict[str, Attribute] = {}
        for definition in definitions:
            parsed = json.loads(definition) if isinstance(definition, str) else (definition or {})
            for item in parsed.get("attributes", []):
                attribute = attribute_from_definition(item)
                if attribute is not None:
                    attributes[attribute.key] = attribute
    return attributes
