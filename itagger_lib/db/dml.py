"""Statements shared by the write paths: ``INSERT … ON CONFLICT DO NOTHING`` on both back ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

if TYPE_CHECKING:
    from sqlalchemy.orm import InstrumentedAttribute

    from itagger_lib.db.models import Base


def insert_ignore(
    connection: sa.Connection,
    model: type[Base],
    rows: list[dict[str, Any]],
    returning: InstrumentedAttribute[Any] | None = None,
) -> list[Any]:
    """Insert ``rows``, skipping those that violate a unique constraint.

    With ``returning`` (a column), the values of that column for the rows actually inserted.
    Safe for concurrent writers and reruns on SQLite and PostgreSQL.
    """
    if not rows:
        return []
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(model).on_conflict_do_nothing()
    if returning is not None:
        return list(connection.execute(statement.returning(returning), rows).scalars())
    connection.execute(statement, rows)
    return []


def inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the one row an ``INSERT`` statement wrote."""
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - only for executemany, which callers never use here
        raise RuntimeError("the INSERT wrote no row")
    return int(key[0])
