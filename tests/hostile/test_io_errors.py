"""NUL bytes, a store remounted read-only, a database on a full disk: one clear error each."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib import Workspace
from itagger_lib.errors import ArgumentError, DatabaseFullError, StoreError
from tests.fakes.codebooks import people_codebook

NUL = r"contains a NUL byte \(\\x00\), which a database cannot store or search for; remove it"


def test_nul_bytes_in_filters_and_values_are_refused_on_both_databases(workspace, sample_dir):
    workspace.ingest(sample_dir, progress=False)
    workspace.load_codebook(people_codebook("nul"))
    first = int(workspace.images().index[0])
    with pytest.raises(ArgumentError, match=NUL):
        workspace.runs("ingest\x00")
    with pytest.raises(ArgumentError, match=NUL):
        workspace.codebook("nul\x00")
    with pytest.raises(ArgumentError, match=NUL):
        workspace.set_setting("key\x00", 1)
    rating = {"image": first, "rater": "r\x00oot", "attribute": "people", "value": 1}
    with pytest.raises(ArgumentError, match=NUL):
        workspace.add_ratings(pd.DataFrame([rating]))
    assert workspace.ratings().empty  # nothing stored


@pytest.fixture
def small_mount(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A real 8 MiB tmpfs (root only), unmounted afterwards."""
    point = tmp_path / "mnt"
    point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def _remount(point: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(point)], check=True)


def test_a_store_remounted_read_only_gives_one_line_errors(tmp_path, small_mount, sample_dir, monkeypatch):
    monkeypatch.setenv("ITAGGER_USER", "tester")
    store = small_mount / "store"
    ws = Workspace(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", store=store, home=tmp_path)
    files = sorted(sample_dir.glob("*.jpg"))
    ws.ingest(files[:1], progress=False)
    staged = ws.store.stage(files[1], "f" * 64, "jpg")  # staged, then the store goes read-only
    assert staged is not None
    (store / ".tmp" / "otherhost-1-x.part").write_bytes(b"left by a dead writer")
    _remount(small_mount, "ro")
    try:
        with pytest.raises(
            StoreError, match=f"image store at {store} cannot be written.*Read-only file system"
        ):
            ws.store.commit([(staged, "f" * 64, "jpg")])
        with pytest.raises(StoreError, match="mounted read-write"):
            ws.ingest(files[1:2], progress=False)  # its clean-up of temp files meets EROFS first
        assert "running" not in set(ws.runs()["status"])
    finally:
        _remount(small_mount, "rw")
        ws.close()


def test_a_full_database_disk_is_one_line_and_loses_nothing(tmp_path, sample_dir, monkeypatch):
    monkeypatch.setenv("ITAGGER_USER", "tester")
    ws = Workspace(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", store=tmp_path / "store", home=tmp_path
    )
    ws.ingest(sample_dir, progress=False)
    ws.load_codebook(people_codebook("full"))
    first = int(ws.images().index[0])
    with ws.engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()

    def full_disk(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's real SQLITE_FULL

    sa.event.listen(ws.engine, "connect", full_disk)
    ws.engine.dispose()
    big = pd.DataFrame(
        [
            {"image": first, "rater": f"r{i}", "attribute": "people", "value": 1, "note": "x" * 20000}
            for i in range(20)
        ]
    )
    with pytest.raises(
        DatabaseFullError,
        match=r"database sqlite:///.*db.sqlite cannot be written \(database or disk is full\); free disk",
    ):
        ws.add_ratings(big)
    assert ws.ratings().empty and len(ws.images()) == len(list(sample_dir.iterdir()))
    sa.event.remove(ws.engine, "connect", full_disk)
    ws.engine.dispose()
    ws.add_ratings(big)  # space freed: the same call works
    assert len(ws.ratings()) == 20
    ws.close()
    shutil.rmtree(tmp_path / "store")
