from __future__ import annotations

import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from itagger_lib.errors import OperationsError
from itagger_lib.ops.backup import backup, restore, row_counts
from itagger_lib.store import sha256_file
from tests.fakes.codebooks import people_codebook

CODEBOOK = people_codebook("backuptest")


def _store_hashes(ws) -> dict[str, str]:
    return {ws.store.relpath(s, e): sha256_file(p) for s, e, p in ws.store.iter_files()}


def test_backup_wipe_restore_round_trip(workspace, sample_dir, tmp_path):
    workspace.ingest(sample_dir)
    before_rows, before_files = row_counts(workspace.engine), _store_hashes(workspace)
    assert before_rows["images"] > 0 and before_files
    manifest = backup(workspace, tmp_path / "bk")
    assert manifest["row_counts"] == before_rows

    with workspace.engine.begin() as conn:  # wipe
        for table in ("image_sources", "images"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    shutil.rmtree(workspace.store.root)
    assert row_counts(workspace.engine)["images"] == 0

    restore(workspace, tmp_path / "bk")
    assert row_counts(workspace.engine) == before_rows
    assert _store_hashes(workspace) == before_files


def test_restore_leaves_exactly_the_schema_of_the_backup(workspace, sample_dir, tmp_path):
    """Rolling back: what a newer release added after the backup (tables, functions, types) goes."""
    workspace.ingest(sample_dir)
    backup(workspace, tmp_path / "bk")
    tables = set(sa.inspect(workspace.engine).get_table_names())
    pg = workspace.engine.dialect.name == "postgresql"
    with workspace.engine.begin() as conn:  # what "the next release" migrates in
        conn.execute(sa.text("CREATE TABLE newer_release (id integer PRIMARY KEY, note text)"))
        conn.execute(sa.text("INSERT INTO newer_release VALUES (1, 'x')"))
        conn.execute(sa.text("DELETE FROM image_sources"))
        if pg:
            conn.execute(sa.text("CREATE TYPE newer_kind AS ENUM ('a', 'b')"))
            conn.execute(sa.text("CREATE SEQUENCE newer_seq"))
            conn.execute(sa.text("CREATE FUNCTION newer_fn() RETURNS int LANGUAGE sql AS 'SELECT 1'"))
            conn.execute(sa.text("CREATE VIEW newer_view AS SELECT id FROM images"))

    restore(workspace, tmp_path / "bk")
    workspace.engine.dispose()
    assert set(sa.inspect(workspace.engine).get_table_names()) == tables
    if pg:
        with workspace.engine.connect() as conn:
            left = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_type WHERE typname = 'newer_kind' "
                    "UNION ALL SELECT count(*) FROM pg_class WHERE relname IN ('newer_seq', 'newer_view') "
                    "UNION ALL SELECT count(*) FROM pg_proc WHERE proname = 'newer_fn'"
                )
            ).scalars()
            assert list(left) == [0, 0, 0]
    assert row_counts(workspace.engine)["image_sources"] > 0


def test_restore_refuses_a_tampered_backup(workspace, sample_dir, tmp_path):
    workspace.ingest(sample_dir)
    backup(workspace, tmp_path / "bk")
    victim = next((tmp_path / "bk" / "store").rglob("*.*"))
    victim.write_bytes(b"tampered")
    with pytest.raises(OperationsError, match="missing or changed"):
        restore(workspace, tmp_path / "bk")


@pytest.mark.postgres
def test_postgres_clients_get_the_password_in_their_environment_only(
    pg_url, sample_dir, tmp_path, monkeypatch
):
    """pg_dump, pg_restore and psql (export) see PGPASSWORD, never the password in argv."""
    import os
    import secrets
    import uuid

    from itagger_lib import Workspace
    from itagger_lib.db.libpq import pg_bin
    from itagger_lib.export import export_ratings

    password = f"pw-{secrets.token_hex(8)}"
    role = f"itg_bk_{uuid.uuid4().hex[:6]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'")
    # a folder of wrappers that log what each real client program was given, then run it
    wrappers = tmp_path / "bin"
    wrappers.mkdir()
    log = tmp_path / "calls.log"
    for name in ("pg_dump", "pg_restore", "psql"):
        real = pg_bin(name)
        assert real, f"{name} is needed (apt-get install postgresql-client)"
        script = wrappers / name
        script.write_text(
            f'#!/bin/sh\necho "{name} argv: $*" >> {log}\necho "{name} env: $PGPASSWORD" >> {log}\n'
            f'exec {real} "$@"\n'
        )
        script.chmod(0o755)
    monkeypatch.setenv("ITAGGER_PG_BINDIR", str(wrappers))
    url = sa.make_url(pg_url).set(username=role, password=password)
    ws = Workspace(database_url=url.render_as_string(hide_password=False), store=tmp_path / "store")
    try:
        ws.ingest(sample_dir, progress=False)
        ws.load_codebook(CODEBOOK)
        first = int(ws.images().index[0])
        ws.add_ratings(pd.DataFrame([{"image": first, "rater": "r1", "attribute": "people", "value": 1}]))
        backup(ws, tmp_path / "bk")
        restore(ws, tmp_path / "bk")
        export_ratings(ws, tmp_path / "ratings.parquet", via="psql")
    finally:
        ws.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role} CASCADE")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()
    assert pq.read_table(tmp_path / "ratings.parquet").num_rows == 1
    calls = log.read_text().splitlines()
    for name in ("pg_dump", "pg_restore", "psql"):
        assert f"{name} env: {password}" in calls, calls
    argv = [line for line in calls if " argv: " in line]
    assert len(argv) >= 3 and not any(password in line for line in argv), argv
    assert os.environ.get("PGPASSWORD") != password  # the parent's environment is untouched
