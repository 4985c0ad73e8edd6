"""Migrations own the schema: the models match them on SQLite and Postgres."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from itagger_lib import Workspace
from itagger_lib.db import current_revision, head_revision, make_engine
from itagger_lib.db.migrate import downgrade, upgrade
from itagger_lib.db.models import Base
from itagger_lib.errors import MigrationError


def test_models_match_migrations(database_url: str) -> None:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    downgrade(engine, "base")
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()


def test_refuses_pending_migrations_when_configured(database_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MigrationError, match="itagger db upgrade"):
        Workspace(database_url=database_url, store=tmp_path / "s", auto_migrate=False)
    Workspace(database_url=database_url, store=tmp_path / "s").close()
    Workspace(database_url=database_url, store=tmp_path / "s", auto_migrate=False).close()


def test_sqlite_uses_wal(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ws = Workspace(home=tmp_path)
    with ws.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert ws.settings.database_url.endswith("itagger.db")
    assert ws.store.root == (tmp_path / "store").resolve()
