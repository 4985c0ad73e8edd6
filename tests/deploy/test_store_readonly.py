"""``ITAGGER_STORE_READONLY=1`` (set by the hub for taggers) is enforced by the library too,
not only by the docker volume mode: writes to the store are refused, reads keep working."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from itagger_lib import Workspace
from itagger_lib.config import Settings
from itagger_lib.errors import ConfigError, StoreError, StoreReadOnlyError
from itagger_lib.store import ImageStore, sha256_file


def test_settings_read_the_flag() -> None:
    assert Settings.from_env({"ITAGGER_STORE_READONLY": "1"}).store_readonly is True
    assert Settings.from_env({"ITAGGER_STORE_READONLY": "0"}).store_readonly is False
    assert Settings.from_env({}).store_readonly is False
    with pytest.raises(ConfigError, match="ITAGGER_STORE_READONLY"):
        Settings.from_env({"ITAGGER_STORE_READONLY": "maybe"})


def test_readonly_store_refuses_writes_and_keeps_reads(tmp_path: Path, sample_dir: Path) -> None:
    image = sorted(sample_dir.glob("*.jpg"))[0]
    sha = sha256_file(image)
    writer = ImageStore(tmp_path / "store", readonly=False)
    assert writer.put(image, sha, "jpg")
    reader = ImageStore(tmp_path / "store", readonly=True)
    other = sorted(sample_dir.glob("*.png"))[0]
    for write in (
        lambda: reader.put(other, sha256_file(other), "png"),
        lambda: reader.stage(other, sha256_file(other), "png"),
        lambda: reader.clean_temp(),
    ):
        with pytest.raises(StoreReadOnlyError, match="ITAGGER_STORE_READONLY") as info:
            write()
        assert "admin or researcher must do the upload" in str(info.value)
        assert isinstance(info.value, StoreError)
    assert reader.contains(sha, "jpg") and reader.path_for(sha, "jpg").read_bytes() == image.read_bytes()
    assert [s for s, _, _ in reader.iter_files()] == [sha]
    assert not (tmp_path / "store" / ".tmp").exists() or not any((tmp_path / "store" / ".tmp").iterdir())


def test_workspace_of_a_tagger_cannot_ingest(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'itagger.db'}"
    admin = Workspace(database_url=url, store=tmp_path / "store", user="admin")
    admin.ingest(sample_dir, progress=False)
    n = len(admin.images())
    admin.close()
    folder = tmp_path / "new"
    folder.mkdir()
    shutil.copy(sorted(sample_dir.glob("*.jpg"))[0], folder / "again.jpg")
    monkeypatch.setenv("ITAGGER_STORE_READONLY", "1")
    tagger = Workspace(database_url=url, store=tmp_path / "store", user="tagger")
    try:
        assert tagger.store.readonly
        with pytest.raises(StoreReadOnlyError, match="ITAGGER_STORE_READONLY"):
            tagger.ingest(folder, progress=False)
        assert len(tagger.images()) == n  # reading the catalogue and the files still works
        assert tagger.image_path(int(tagger.images().index[0])).is_file()
    finally:
        tagger.close()
