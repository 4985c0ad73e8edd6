"""A run killed mid-way (SIGKILL) resumes on rerun without paying twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from itagger_lib.db.models import Run, VLMCall
from itagger_lib.vlm.rating import rate_with_vlm
from tests.fakes.vlm_server import FakeVLMServer

CHILD = """
import sys
import itagger_lib as it
ws = it.Workspace(database_url=sys.argv[1], store=sys.argv[2])
ws.rate_with_vlm(provider="openai", model="test-model", attributes=["coherence"], concurrency=2,
                 provider_options={"base_url": sys.argv[3]}, progress=False)
"""


def _ok_calls(ws: Any) -> int:
    with ws.engine.connect() as connection:
        return int(
            connection.execute(
                sa.select(sa.func.count()).select_from(VLMCall).where(VLMCall.status == "ok")
            ).scalar_one()
        )


def test_killed_run_resumes_without_paying_twice(ws: Any) -> None:
    root = Path(__file__).resolve().parents[2]
    with FakeVLMServer(latency=0.3) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, ws.settings.database_url, str(ws.store.root), server.openai_url],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        deadline = time.monotonic() + 60
        while _ok_calls(ws) < 4 and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        done = _ok_calls(ws)
        assert 4 <= done < 12
        sent_before = len(server.requests)
        report = rate_with_vlm(
            ws,
            provider="openai",
            model="test-model",
            attributes=["coherence"],
            provider_options={"base_url": server.openai_url},
            progress=False,
        )
    assert report.cache_hits == done and report.requests == 12 - done
    assert len(server.requests) - sent_before == 12 - done
    with ws.engine.connect() as connection:
        statuses = dict(
            connection.execute(sa.select(VLMCall.status, sa.func.count()).group_by(VLMCall.status)).all()
        )
        first_run = sa.select(Run.status).where(Run.kind == "vlm").order_by(Run.id).limit(1)
        killed = connection.execute(first_run).scalar_one()
    assert statuses["ok"] == 12 and statuses.get("reserved", 0) == 0
    abandoned = statuses.get("abandoned", 0)
    assert killed == "interrupted"  # the dead process's run was closed ...
    assert abandoned <= 2  # ... and its in-flight reservations (concurrency 2) charged as abandoned
