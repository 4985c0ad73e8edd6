"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from itagger_lib.errors import ArgumentError, ConfigError, DatabaseFullError


def redact_url(url: str | URL) -> str:
    """The URL with its password replaced by ``***``, for messages and logs."""
    try:
        return make_url(str(url)).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _nul_in(value: Any) -> str | None:
    if isinstance(value, str):
        return value if "\x00" in value else None
    if isinstance(value, Mapping):
        value = value.values()
    elif not isinstance(value, list | tuple):
        return None
    for item in value:
        found = _nul_in(item)
        if found is not None:
            return found
    return None


def _refuse_nul(_conn: Any, _cursor: Any, _statement: str, parameters: Any, *_: Any) -> None:
    """Text with a NUL byte never reaches the database: PostgreSQL cannot hold it and SQLite
    would store it raw, cutting it short in most tools. One clear error instead, on both."""
    found = _nul_in(parameters)
    if found is not None:
        raise ArgumentError(
            f"the text {found[:60]!r} contains a NUL byte (\\x00), which a database cannot store "
            "or search for; remove it"
        )


_FULL = (
    "database or disk is full",
    "no space left on device",
    "attempt to write a readonly database",
    "read-only file system",
    "could not extend file",
)


def _disk_full(context: Any) -> None:
    """A full or read-only disk under the database: one line naming the database, not a traceback."""
    text = str(context.original_exception).lower()
    if any(phrase in text for phrase in _FULL):
        first = str(context.original_exception).strip().splitlines()[0][:200]
        url = redact_url(context.engine.url) if context.engine is not None else "the database"
        raise DatabaseFullError(
            f"database {url} cannot be written ({first}); free disk space (or make it writable) "
            "and run the step again: nothing of it was stored"
        ) from context.original_exception


def make_engine(url: str) -> Engine:
    """An engine for ``url``: ``sqlite:///path`` or ``postgresql+psycopg://...``.

    SQLite databases use WAL mode so that a notebook can read while a batch writes.
    """
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigError(
            f"ITAGGER_DATABASE_URL {redact_url(url)!r} is not a database URL; use "
            "sqlite:///path/to/itagger.db or postgresql+psycopg://user@host/db"
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(parsed, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "before_cursor_execute", _refuse_nul)
        sa.event.listen(engine, "handle_error", _disk_full)
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg 3 here
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() != "psycopg":
            raise ConfigError(
                f"database URL {redact_url(url)!r} uses driver {parsed.get_driver_name()!r}; "
                "write PostgreSQL URLs as postgresql+psycopg://user@host:5432/db"
            )
        engine = sa.create_engine(parsed, pool_pre_ping=True)
        sa.event.listen(engine, "before_cursor_execute", _refuse_nul)
        sa.event.listen(engine, "handle_error", _disk_full)
        return engine
    raise ConfigError(
        f"database URL {redact_url(url)!r}: backend {backend!r} is not supported; "
        "use sqlite:/// or postgresql+psycopg://"
    )
