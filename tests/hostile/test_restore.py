"""A crafted backup folder cannot write outside the store, and is refused before anything is touched."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from itagger_lib.errors import OperationsError
from itagger_lib.ops import stack
from itagger_lib.ops.backup import backup, restore, row_counts, verify
from itagger_lib.store import sha256_file
from tests.fakes.codebooks import people_codebook

ROOT = Path(__file__).resolve().parents[2]


def _state(ws) -> tuple[dict[str, int], dict[str, str]]:
    files = {ws.store.relpath(s, e): sha256_file(p) for s, e, p in ws.store.iter_files()}
    return row_counts(ws.engine), files


@pytest.fixture
def bk(workspace, sample_dir, tmp_path):
    """A real backup of a workspace with images, then the workspace changed after it."""
    workspace.ingest(sample_dir, progress=False)
    backup(workspace, tmp_path / "bk")
    workspace.load_codebook(people_codebook("after-backup"))  # a restore would undo this
    return tmp_path / "bk"


def _manifest(bk: Path) -> dict:
    return json.loads((bk / "manifest.json").read_text())


def _write(bk: Path, manifest: object) -> None:
    (bk / "manifest.json").write_text(json.dumps(manifest))


def _refused(ws, bk: Path, match: str) -> None:
    before = _state(ws)
    with pytest.raises(OperationsError, match=match):
        restore(ws, bk)
    assert _state(ws) == before, "a refused restore touched the workspace"
    assert not list((ws.store.root / ".tmp").glob("restore-*")), "staging left behind"


@pytest.mark.parametrize(
    "name",
    ["store//tmp/x/evil.sh", "store/../evil.sh", "/tmp/evil.sh", "store/ab/../../../evil.sh", "evil.sh"],
)
def test_entries_outside_the_store_shape_are_refused(workspace, bk, tmp_path, name):
    manifest = _manifest(bk)
    payload = b"#!/bin/sh\necho owned\n"
    manifest["files"][name] = hashlib.sha256(payload).hexdigest()
    _write(bk, manifest)
    _refused(workspace, bk, "not a file a backup holds|not named after the hash")
    assert not (tmp_path / "evil.sh").exists() and not Path("/tmp/x/evil.sh").exists()


def test_a_link_with_the_right_hash_is_not_followed(workspace, bk, tmp_path):
    victim = next((bk / "store").rglob("*.*"))
    outside = tmp_path / "outside.bin"
    outside.write_bytes(victim.read_bytes())  # same bytes, so the same hash
    victim.unlink()
    victim.symlink_to(outside)
    _refused(workspace, bk, "a link")
    (bk / "store").rename(tmp_path / "real-store")
    (bk / "store").symlink_to(tmp_path / "real-store")  # a linked folder, too
    _refused(workspace, bk, "a link")


def test_a_fifo_in_the_backup_is_refused_without_hanging(workspace, bk):
    victim = next((bk / "store").rglob("*.*"))
    victim.unlink()
    os.mkfifo(victim)
    _refused(workspace, bk, "not a regular file")


def test_a_forged_file_with_its_forged_hash_is_refused(workspace, bk):
    manifest = _manifest(bk)
    name = next(n for n in manifest["files"] if n.startswith("store/"))
    forged = b"not the image this name promises"
    (bk / name).write_bytes(forged)
    manifest["files"][name] = hashlib.sha256(forged).hexdigest()
    _write(bk, manifest)
    _refused(workspace, bk, "not named after the hash of its bytes")


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ([], "is a list, not an object"),
        ({"dialect": "sqlite", "row_counts": {}}, "lacks its 'files'"),
        ("files", "is a str"),
    ],
)
def test_a_manifest_of_the_wrong_shape_is_a_clear_error(workspace, bk, shape, match):
    _write(bk, shape)
    _refused(workspace, bk, match)


def test_empty_files_while_the_database_has_images_is_refused(workspace, bk):
    manifest = _manifest(bk)
    db = "db.dump" if manifest["dialect"] == "postgresql" else "db.sqlite"
    _write(bk, {**manifest, "files": {}})
    _refused(workspace, bk, f"does not list the database file {db}")
    # the database file alone: its image rows have no files in the backup
    _write(bk, {**manifest, "files": {db: manifest["files"][db]}})
    _refused(workspace, bk, r"image\(s\) have no file in the backup")


def test_wrong_row_counts_are_refused_before_the_database_is_replaced(workspace, bk):
    manifest = _manifest(bk)
    manifest["row_counts"]["images"] += 1
    _write(bk, manifest)
    _refused(workspace, bk, "row counts are not the manifest's")


def test_a_good_backup_still_restores_and_repairs_damaged_store_files(workspace, bk):
    sha, _ext, damaged = next(workspace.store.iter_files())
    damaged.write_bytes(b"bit rot")
    restore(workspace, bk)
    assert row_counts(workspace.engine) == _manifest(bk)["row_counts"]
    assert sha256_file(damaged) == sha


def test_cli_restore_of_a_list_manifest_is_one_line(workspace, bk, tmp_path):
    _write(bk, [])
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ITAGGER_DATABASE_URL": workspace.engine.url.render_as_string(hide_password=False),
        "ITAGGER_STORE": str(workspace.store.root),
    }
    done = subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "restore", str(bk)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "not an object" in done.stderr, done.stderr


def _tar(*members: tarfile.TarInfo) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for m in members:
            tar.addfile(m, io.BytesIO(b"x" * m.size) if m.isfile() else None)
    return buf.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, 1 if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("jovyan/etc", tarfile.SYMTYPE, "/etc"),
        _member("jovyan/up", tarfile.SYMTYPE, "../.."),
        _member("jovyan/a/up", tarfile.SYMTYPE, "../../x"),
        _member("jovyan/hard", tarfile.LNKTYPE, "etc/passwd"),
        _member("jovyan/null", tarfile.CHRTYPE),
        _member("jovyan/pipe", tarfile.FIFOTYPE),
    ],
    ids=["abs-link", "climbing-link", "deep-climbing-link", "hard-link", "device", "fifo"],
)
def test_home_archives_with_links_or_devices_are_refused_before_anything(tmp_path, member):
    (tmp_path / "homes").mkdir()
    (tmp_path / "homes" / "itagger-home-a.tar").write_bytes(_tar(_member("jovyan/ok.txt"), member))
    with pytest.raises(OperationsError, match="home archive itagger-home-a"):
        stack.check_home_archives(tmp_path, ["itagger-home-a"])


def test_home_archives_with_links_inside_the_home_pass(tmp_path):
    (tmp_path / "homes").mkdir()
    ok = _tar(_member("jovyan/a/b.txt"), _member("jovyan/a/link", tarfile.SYMTYPE, "../a/b.txt"))
    (tmp_path / "homes" / "itagger-home-a.tar").write_bytes(ok)
    stack.check_home_archives(tmp_path, ["itagger-home-a"])


def test_verify_reads_the_same_rules(workspace, bk):
    assert verify(bk)["files"]
    _write(bk, {**_manifest(bk), "files": {"store/../x": "0" * 64}})
    with pytest.raises(OperationsError):
        verify(bk)


def test_a_folder_that_is_not_there_is_one_line_from_the_cli(tmp_path: Path) -> None:
    with pytest.raises(OperationsError, match="cannot open the folder"):
        verify(tmp_path / "no-such-backup")
    done = subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "--database-url", f"sqlite:///{tmp_path / 'x.db'}",
         "restore", str(tmp_path / "no-such-backup")],
        capture_output=True, text=True, env={**os.environ, "ITAGGER_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "cannot open the folder" in done.stderr
