"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from itagger_lib.errors import ConfigError


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
        return engine
    if backend == "postgresql":
        if parsed.drivername == "postgresql":  # plain postgresql:// means psycopg 3 here
            parsed = parsed.set(drivername="postgresql+psycopg")
        if parsed.get_driver_name() != "psycopg":
            raise ConfigError(
                f"database URL {redact_url(url)!r} uses driver {parsed.get_driver_name()!r}; "
                "write PostgreSQL URLs as postgresql+psycopg://user@host:5432/db"
            )
        return sa.create_engine(parsed, pool_pre_ping=True)
    raise ConfigError(
        f"database URL {redact_url(url)!r}: backend {backend!r} is not supported; "
        "use sqlite:/// or postgresql+psycopg://"
    )
