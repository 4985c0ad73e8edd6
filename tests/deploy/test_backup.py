from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa

from itagger_lib.errors import OperationsError
from itagger_lib.ops.backup import backup, restore, row_counts
from itagger_lib.store import sha256_file


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


def test_restore_refuses_a_tampered_backup(workspace, sample_dir, tmp_path):
    workspace.ingest(sample_dir)
    backup(workspace, tmp_path / "bk")
    victim = next((tmp_path / "bk" / "store").rglob("*.*"))
    victim.write_bytes(b"tampered")
    with pytest.raises(OperationsError, match="missing or changed"):
        restore(workspace, tmp_path / "bk")
