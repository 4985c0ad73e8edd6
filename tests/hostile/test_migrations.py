"""A migration that fails half-way changes nothing; a database newer than the release is named."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from itagger_lib import Workspace
from itagger_lib.db import current_revision, head_revision, make_engine, upgrade
from itagger_lib.errors import MigrationError

ROOT = Path(__file__).resolve().parents[2]


def _full_disk_engine(url: str, pages: int) -> sa.Engine:
    """The workspace's own engine on a database that may not grow past ``pages`` pages:
    SQLite's real ``SQLITE_FULL``, as on a full disk."""
    engine = make_engine(url)

    def limit(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    sa.event.listen(engine, "connect", limit)
    return engine


@pytest.mark.parametrize("pages", [8, 20, 40])
def test_a_full_disk_during_the_first_migration_leaves_a_usable_database(tmp_path, pages):
    url = f"sqlite:///{tmp_path / 'itagger.db'}"
    full = _full_disk_engine(url, pages)
    with pytest.raises(MigrationError, match=r"full.*nothing was changed.*again"):
        upgrade(full)
    assert current_revision(full) is None
    assert [t for t in sa.inspect(full).get_table_names() if t != "alembic_version"] == []
    full.dispose()
    # space freed: the next try succeeds and the workspace works
    with Workspace(database_url=url, store=tmp_path / "store", home=tmp_path / "home") as ws:
        assert current_revision(ws.engine) == head_revision()
        assert ws.images().empty


def _at_future_revision(url: str) -> None:
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0099_from_the_future'"))
    engine.dispose()


NEWER = (
    r"is at revision 0099_from_the_future, which this release \(.+\) does not know: it was "
    r"upgraded by a newer release; restore the backup made before the upgrade "
    r"\(docs/deploy.md, Roll back\)"
)


def test_a_database_newer_than_the_release_is_named_when_opening(database_url, tmp_path):
    _at_future_revision(database_url)
    for auto in (True, False):
        with pytest.raises(MigrationError, match=NEWER):
            Workspace(database_url=database_url, store=tmp_path / "s", home=tmp_path / "h", auto_migrate=auto)


@pytest.mark.parametrize("command", [["db", "upgrade"], ["db", "current"], ["images"]])
def test_cli_on_a_newer_database_says_so_in_one_line(tmp_path, command):
    url = f"sqlite:///{tmp_path / 'itagger.db'}"
    _at_future_revision(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ITAGGER_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "--database-url", url, *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "0099_from_the_future" in lines[0] and "Roll back" in lines[0]


def test_roll_back_restores_the_backup_over_a_newer_database(tmp_path):
    """docs/deploy.md, Roll back: the old release restores the pre-upgrade backup."""
    from itagger_lib.ops.backup import backup

    url = f"sqlite:///{tmp_path / 'itagger.db'}"
    with Workspace(database_url=url, store=tmp_path / "store", home=tmp_path / "home") as ws:
        backup(ws, tmp_path / "pre-upgrade")
    _at_future_revision(url)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ITAGGER_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "itagger_lib.cli",
            "--database-url",
            url,
            "--store",
            str(tmp_path / "store"),
            "restore",
            str(tmp_path / "pre-upgrade"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert current_revision(make_engine(url)) == head_revision()
