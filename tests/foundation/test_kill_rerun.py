"""Killing an ingest at any moment and running it again leaves store and database consistent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from itagger_lib import Workspace
from itagger_lib.samples import write_samples


@pytest.fixture(scope="module")
def many_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("kill")
    write_samples(folder, n=160, width=640, height=480)
    return folder


@pytest.mark.parametrize("delay", [0.4, 0.9, 1.5])
def test_kill_and_rerun(database_url: str, tmp_path: Path, many_images: Path, delay: float) -> None:
    store = tmp_path / "store"
    env = {
        **os.environ,
        "ITAGGER_DATABASE_URL": database_url,
        "ITAGGER_STORE": str(store),
        "ITAGGER_HOME": str(tmp_path / "home"),
    }
    Workspace(database_url=database_url, store=store).close()  # migrate before timing the kill
    proc = subprocess.Popen(
        [sys.executable, "-m", "itagger_lib.cli", "ingest", str(many_images), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)

    ws = Workspace(database_url=database_url, store=store)
    mid = ws.check(rehash=True)
    assert mid.missing == [] and mid.corrupted == []  # every row has its file, intact
    done = ws.ingest(many_images, progress=False)
    assert not done.failed
    assert not list((store / ".tmp").glob("*.part"))  # the rerun removed orphan temp files
    final = ws.check(rehash=True)
    assert final.ok, str(final)
    with ws.engine.connect() as connection:
        count, distinct = connection.execute(
            sa.text("select count(*), count(distinct sha256) from images")
        ).one()
    assert count == distinct == 160
    ws.close()
