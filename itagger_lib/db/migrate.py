"""Alembic, driven from code: the migrations ship inside the package.

:func:`open_schema` is what opening a workspace does: apply pending migrations, or, where
that is not allowed (``ITAGGER_AUTO_MIGRATE=0``, the hub's per-user roles), refuse a
database behind the package with :class:`~itagger_lib.errors.MigrationError`.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from itagger_lib._version import __version__
from itagger_lib.db.engine import redact_url
from itagger_lib.errors import DatabaseFullError, MigrationError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def head_revision() -> str:
    """The newest migration this version of the package knows."""
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_known(engine: Engine, current: str | None) -> None:
    """Raise :class:`MigrationError` when ``current`` is a revision this release does not know
    (a newer release upgraded the database, and the code was rolled back)."""
    if current is None:
        return
    script = ScriptDirectory(str(MIGRATIONS))
    if current not in {rev.revision for rev in script.walk_revisions()}:
        raise MigrationError(
            f"database {redact_url(engine.url)} is at revision {current}, which this release "
            f"({__version__}) does not know: it was upgraded by a newer release; restore the "
            "backup made before the upgrade (docs/deploy.md, Roll back)"
        )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision``, all in one transaction.

    A failure (a full disk, a lost connection) leaves the schema as it was and raises
    :class:`MigrationError`; run the upgrade again once the cause is fixed.
    """
    current = current_revision(engine)
    check_known(engine, current)
    try:
        command.upgrade(alembic_config(engine), revision)
    except (sa.exc.SQLAlchemyError, DatabaseFullError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc.__cause__ or exc
        raise MigrationError(
            f"migrating database {redact_url(engine.url)} from {current or 'empty'} to {revision} "
            f"failed ({str(cause).splitlines()[0][:300]}); nothing was changed: fix the cause "
            "(free disk space, check the connection) and run `itagger db upgrade` again"
        ) from exc


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def open_schema(engine: Engine, *, auto_migrate: bool) -> None:
    """Bring the database to the package's schema, or refuse one that is behind it.

    With ``auto_migrate`` pending migrations are applied; without, a database not at
    :func:`head_revision` raises :class:`MigrationError` telling the admin to back up and
    run ``itagger db upgrade``.
    """
    head = head_revision()
    current = current_revision(engine)
    if current == head:
        return
    check_known(engine, current)
    if not auto_migrate:
        raise MigrationError(
            f"database {redact_url(engine.url)} is at schema revision "
            f"{current or 'none (empty)'}, but Image Tagger {__version__} needs {head}; "
            "back it up, then run `itagger db upgrade`"
        )
    upgrade(engine)
