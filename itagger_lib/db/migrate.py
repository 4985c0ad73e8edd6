"""Alembic, driven from code: the migrations ship inside the package.

:func:`open_schema` is what opening a workspace does: apply pending migrations, or, where
that is not allowed (``ITAGGER_AUTO_MIGRATE=0``, the hub's per-user roles), refuse a
database behind the package with :class:`~itagger_lib.errors.MigrationError`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from itagger_lib._version import __version__
from itagger_lib.db.engine import redact_url
from itagger_lib.errors import MigrationError

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


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply pending migrations up to ``revision``."""
    command.upgrade(alembic_config(engine), revision)


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
    if not auto_migrate:
        raise MigrationError(
            f"database {redact_url(engine.url)} is at schema revision "
            f"{current or 'none (empty)'}, but Image Tagger {__version__} needs {head}; "
            "back it up, then run `itagger db upgrade`"
        )
    upgrade(engine)
