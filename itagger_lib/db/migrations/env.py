"""Alembic environment: the engine comes from ``config.attributes`` (see ``db.migrate``).

Every pending migration runs in one transaction, on PostgreSQL and on SQLite alike.
"""

from __future__ import annotations

from alembic import context

from itagger_lib.db.models import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # SQLite has transactional DDL, but Python's sqlite3 opens transactions only before
        # INSERT/UPDATE/DELETE: open one by hand, so that a migration that fails half-way
        # (a full disk) leaves the schema as it was and the next try starts clean.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=sqlite,
        compare_type=True,
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
