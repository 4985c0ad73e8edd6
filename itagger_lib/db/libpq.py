"""Running PostgreSQL's own client programs (``psql``, ``pg_dump``, ``pg_restore``) safely.

The password never goes on a command line, where ``ps`` shows it to every user of the
machine: it travels in the child's environment (``PGPASSWORD``), which only the child and
root can read.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import sqlalchemy as sa

__all__ = ["client_env", "client_target", "pg_bin"]


def pg_bin(name: str) -> str | None:
    """The client program ``name``, or ``None`` when there is none.

    From ``ITAGGER_PG_BINDIR`` when set (pick the client major version: ``pg_dump`` must be
    at least the server's), else the newest under ``/usr/lib/postgresql`` (Debian keeps one
    folder per major version), else ``PATH``.
    """
    folder = os.environ.get("ITAGGER_PG_BINDIR")
    if folder:
        path = Path(folder) / name
        return str(path) if path.is_file() else None
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(found[-1]) if found else shutil.which(name)


def client_target(url: sa.URL) -> str:
    """A libpq connection URI for ``url`` without its password."""
    # built afresh: ``url.set(password=None)`` keeps the old password
    bare = sa.URL.create(
        "postgresql",
        username=url.username,
        host=url.host,
        port=url.port,
        database=url.database,
        query=url.query,
    )
    return bare.render_as_string(hide_password=False)


def client_env(url: sa.URL, **extra: str) -> dict[str, str]:
    """This process's environment plus ``PGPASSWORD`` (when ``url`` has one) and ``extra``."""
    env = {**os.environ, **extra}
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    return env
