"""Worker processes for the concurrent-raters test (importable under ``spawn``)."""

from __future__ import annotations

import time
from pathlib import Path


def rate_until(
    database_url: str, root: str, rater: str, study: str, seconds: float
) -> list[tuple[int, int, str]]:
    """Rate items as ``rater`` until the queue is empty or ``seconds`` pass.

    Returns ``(assignment id, image id, kind)`` of every item this process rated.
    """
    from itagger_lib import Workspace
    from itagger_lib.ratings.queue import next_assignment
    from itagger_lib.ratings.recording import record_rating

    ws = Workspace(
        database_url=database_url, store=Path(root) / "store", home=Path(root) / "home", user=rater
    )
    done: list[tuple[int, int, str]] = []
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            item = next_assignment(ws, study, rater)
            if item is None:
                break
            record_rating(ws, item, "test_binary", 1, rater, dwell_ms=5, session_id=rater)
            done.append((item.id, item.image_id, item.kind))
    finally:
        ws.close()
    return done
