"""A throwaway PostgreSQL database for one benchmark run (created, then dropped)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa


def fresh_pg(server: str) -> tuple[str, str]:
    """Create an empty database on ``server`` (a URL whose role may create databases).

    Returns its URL and its name.
    """
    name = f"itagger_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return sa.make_url(server).set(database=name).render_as_string(hide_password=False), name


def drop_pg(server: str, name: str) -> None:
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
