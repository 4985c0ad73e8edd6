"""The CLI's exit statuses, and one version everywhere."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import itagger_lib
from itagger_lib.cli import main
from itagger_lib.db import head_revision

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )


def test_version_is_the_same_everywhere() -> None:
    version = (ROOT / "VERSION").read_text().strip()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert itagger_lib.__version__ == version
    assert _run("--version").stdout.strip() == f"itagger {version}"
    assert f"Image Tagger {version}" in (ROOT / "README.md").read_text()
    exe = shutil.which("itagger", path=str(Path(sys.executable).parent))
    assert exe, "the console script `itagger` is installed"
    assert (
        subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.strip()
        == f"itagger {version}"
    )


def test_ingest_exit_statuses(tmp_path: Path, sample_dir: Path) -> None:
    home = str(tmp_path / "home")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    ok = _run("--home", home, "ingest", str(sample_dir / "facade_000.jpg"), str(bad))
    assert ok.returncode == 0, ok.stderr
    assert "1 added" in ok.stdout and "bad.jpg: is empty" in ok.stdout
    strict = _run("--home", home, "ingest", "--strict", str(sample_dir / "facade_000.jpg"), str(bad))
    assert strict.returncode == 1
    nothing = _run("--home", home, "ingest", str(tmp_path / "missing"))
    assert nothing.returncode == 1 and "no such file" in nothing.stdout
    usage = _run("--home", home, "ingest")
    assert usage.returncode == 2 and "PATH" in usage.stderr
    assert _run("--home", home, "bogus-command").returncode == 2
    assert main(["--home", home]) == 2


def test_check_reports_missing_changed_and_orphan_files(tmp_path: Path, sample_dir: Path) -> None:
    home = str(tmp_path / "home")
    assert _run("--home", home, "ingest", str(sample_dir)).returncode == 0
    assert _run("--home", home, "check").returncode == 0
    from itagger_lib import Workspace

    ws = Workspace(home=home)
    images = ws.images()
    first = ws.store.path_for(images.iloc[0]["sha256"], images.iloc[0]["ext"])
    second = ws.store.path_for(images.iloc[1]["sha256"], images.iloc[1]["ext"])
    first.unlink()
    second.chmod(0o644)
    second.write_bytes(second.read_bytes() + b"changed")
    orphan = ws.store.path_for("f" * 64, "jpg")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    result = _run("--home", home, "check")
    assert result.returncode == 1
    assert f"MISSING  {images.iloc[0]['sha256']}" in result.stdout
    assert f"CHANGED  {images.iloc[1]['sha256']}" in result.stdout
    assert "ORPHAN" in result.stdout and "f" * 64 in result.stdout


def test_db_commands(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    current = _run("--home", home, "db", "current")
    assert current.returncode == 1 and "current: empty" in current.stdout

    upgraded = _run("--home", home, "db", "upgrade")
    assert upgraded.returncode == 0 and f"-> {head_revision()}" in upgraded.stdout
    assert _run("--home", home, "db", "current").returncode == 0


@pytest.mark.parametrize("url", ["mysql://x@localhost/db", "postgresql+psycopg2://u@h/db", "not a url"])
def test_bad_database_url_names_the_setting(url: str) -> None:
    from itagger_lib import Workspace
    from itagger_lib.errors import ConfigError

    with pytest.raises(ConfigError, match="postgresql\\+psycopg"):
        Workspace(database_url=url)
