"""Engines for SQLite (WAL, foreign keys on) and PostgreSQL (psycopg 3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, ExceptionContext, make_url

from itagger_lib.errors import (
    ArgumentError,
    AssignmentError,
    ConfigError,
    DatabaseFullError,
    PermissionDeniedError,
    RatingError,
)

# Tables only admins write (the rest: researchers); see itagger_lib.ops.security.
_ADMIN_TABLES = frozenset({"codebooks", "settings", "vlm_prices", "itagger_role_users"})
_VERBS = {
    "INSERT": "insert into",
    "UPDATE": "update",
    "DELETE": "delete from",
    "SELECT": "read",
    "LOCK": "lock",
    "TRUNCATE": "truncate",
}
_DENIED = re.compile(r"permission denied for (?:table|relation|sequence|view|function|schema) \"?([\w.]+)")
_POLICY = re.compile(r"row-level security policy for table \"?([\w.]+)")


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


def database_error(context: ExceptionContext) -> Exception | None:
    """Our own error for a PostgreSQL refusal (``handle_error`` hook), else ``None``.

    SQLSTATE ``42501`` (a missing privilege, a row-level security policy, or the checked
    write functions refusing to act for another rater) becomes
    :class:`PermissionDeniedError` naming the action and the role that may do it; ``IT422``
    (an answer the codebook does not allow) and the finite-value check become
    :class:`RatingError`, ``IT409`` :class:`AssignmentError`.
    """
    orig = context.original_exception
    if "ck_ratings_value_finite" in str(orig):  # PostgreSQL's CHECK, SQLite's trigger
        return RatingError(
            "a rating value must be a finite number: NaN and infinities are refused "
            "(ratings.value, constraint ck_ratings_value_finite)"
        )
    code = getattr(orig, "sqlstate", None)
    if not code:
        return None
    diag = getattr(orig, "diag", None)
    message = str(getattr(diag, "message_primary", None) or orig).strip()
    role = context.engine.url.username if context.engine is not None else None
    if code == "42501":
        words = (context.statement or "").split(None, 1)
        verb = _VERBS.get(words[0].upper(), "use") if words else "use"
        denied = _DENIED.search(message)
        if denied:
            table = denied.group(1)
            needed = "admin" if table in _ADMIN_TABLES else "researcher"
            kind = "function" if "for function" in message else "table"
            action = f"call function {table}" if kind == "function" else f"{verb} table {table}"
            return PermissionDeniedError(action, role, needed)
        policy = _POLICY.search(message)
        if policy:
            return PermissionDeniedError(
                f"{verb} these rows of table {policy.group(1)}", role, "researcher", message
            )
        return PermissionDeniedError(message, role, None)
    if code == "IT422":
        return RatingError(message)
    if code == "IT409":
        return AssignmentError(message)
    return None


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
        sa.event.listen(engine, "handle_error", database_error)
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
        sa.event.listen(engine, "handle_error", database_error)
        return engine
    raise ConfigError(
        f"database URL {redact_url(url)!r}: backend {backend!r} is not supported; "
        "use sqlite:/// or postgresql+psycopg://"
    )
