"""Files that are not regular files are recorded failures, never read; killed ingest runs are closed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]


def _ingest_within(ws, paths, seconds: float, fifos: list[Path]):  # type: ignore[no-untyped-def]
    """``ws.ingest(paths)``, failing (and unblocking the reader) if it takes over ``seconds``."""
    out: dict[str, object] = {}
    worker = threading.Thread(target=lambda: out.update(report=ws.ingest(paths, progress=False)), daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        for fifo in fifos:  # let the blocked open() return so the test process can end
            with open(fifo, "wb"):
                pass
        worker.join(5)
        raise AssertionError(f"ingest hung on a special file for over {seconds} s")
    return out["report"]


def test_fifos_devices_and_sockets_named_like_images_are_failures_not_reads(workspace, sample_dir, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(next(sample_dir.glob("*.jpg")), folder / "real.jpg")
    os.mkfifo(folder / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock.png"))
    (folder / "dev.jpg").symlink_to("/dev/zero")  # a device reached through a link
    lone = tmp_path / "lone.jpg"
    os.mkfifo(lone)
    try:
        report = _ingest_within(workspace, [folder, lone], 30, [folder / "pipe.jpg", lone])
    finally:
        sock.close()
    assert report.added == [str(folder / "real.jpg")]
    reasons = dict(report.failed)
    assert "is a FIFO, not a regular file" in reasons[str(folder / "pipe.jpg")]
    assert "is a FIFO" in reasons[str(lone)]
    assert "is a socket" in reasons[str(folder / "sock.png")]
    assert "is a device" in reasons[str(folder / "dev.jpg")]
    failures = workspace.failures(report.run_id)
    assert len(failures) == 4 and report.status == "partial"


KILLED_RUN = """
import os, signal, sys
from itagger_lib.db import make_engine
from itagger_lib.runs import start_run
run_id = start_run(make_engine(sys.argv[1]), "ingest", {"paths": ["big/"]}, "killed")
print(run_id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_an_ingest_run_killed_mid_way_is_marked_interrupted_by_the_next(workspace, sample_dir):
    url = workspace.engine.url.render_as_string(hide_password=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, url], capture_output=True, text=True, env=env, timeout=60
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    killed = int(done.stdout.split()[0])
    with workspace.engine.connect() as conn:
        status = conn.execute(sa.text("SELECT status FROM runs WHERE id = :i"), {"i": killed}).scalar_one()
    assert status == "running"
    workspace.ingest(sample_dir, progress=False)
    with workspace.engine.connect() as conn:
        row = conn.execute(sa.text("SELECT status, error FROM runs WHERE id = :i"), {"i": killed}).one()
    assert row.status == "interrupted" and "killed or crashed" in row.error
    assert workspace.runs("ingest").loc[killed, "status"] == "interrupted"
