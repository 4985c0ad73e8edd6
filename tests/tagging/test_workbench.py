"""The tagging workbench driven like a rater would: buttons and (simulated) key events."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Assignment, Rating
from itagger_lib.ratings.imports import add_ratings
from itagger_lib.ratings.queue import progress
from itagger_lib.ratings.studies import create_study
from itagger_lib.widgets.tagging import TaggingWorkbench


def _ratings(ws: Any) -> list[Any]:
    with ws.engine.connect() as c:
        return (
            c.execute(sa.select(Rating).where(Rating.source == "human").order_by(Rating.id)).mappings().all()
        )


def test_empty_workspace_says_what_to_do(workspace: Any) -> None:
    bench = TaggingWorkbench(workspace)
    assert "create_study" in bench.question.value and bench.answers.children == ()
    bench.press("1")  # nothing happens, nothing breaks
    assert _ratings(workspace) == []


def test_keyboard_rating_back_change_resume(tagged_ws: Any) -> None:
    create_study(tagged_ws, "s", raters_per_image=1, seed=1)
    bench = TaggingWorkbench(tagged_ws, rater="alice", attributes=["test_binary", "calm"])
    assert bench.image.value[:2] == b"\xff\xd8"  # a JPEG is shown
    assert "Are people visible?" in bench.question.value
    assert bench.progress == "Image 1 of 12 · 2 questions left"
    assert "Image 1 of 12" in bench.progress_label.value
    assert bench.key_catcher.watched_keys == ["0", "1", "ArrowLeft", "Backspace", "s", "S"]
    first_image = bench.item.image_id
    bench.press("1", 1000.0)  # test_binary = 1 (first question after load: server dwell)
    assert bench.last_dwell is not None and bench.last_dwell[1] == "server"
    assert "How calm" in bench.question.value
    assert bench.progress == "Image 1 of 12 · last question"
    assert "✓ Saved" in bench.message.value and "People: 1 · Yes" in bench.message.value
    bench.press("4", 3500.0)  # calm = 4, browser dwell 2500 ms
    assert bench.last_dwell == (2500, "browser")
    assert bench.item.image_id != first_image
    assert bench.progress == "Image 2 of 12 · 2 questions left"
    bench.press("0", 4000.0)
    bench.press("ArrowLeft", 4100.0)  # back to test_binary of image 2
    assert "Are people visible?" in bench.question.value
    bench.press("Backspace", 4200.0)  # back to calm of image 1
    assert bench.item.image_id == first_image and "How calm" in bench.question.value
    selected = [b.description for b in bench.answers.children if b.button_style == "info"]
    assert selected == ["4 · 4"] or selected[0].startswith("4")
    bench.press("2", 5000.0)  # change calm 4 -> 2 and advance
    assert bench.item.image_id != first_image and "Are people visible?" in bench.question.value
    rows = _ratings(tagged_ws)
    calm_first = [r for r in rows if r["image_id"] == first_image and r["attribute"] == "calm"]
    assert len(calm_first) == 1 and calm_first[0]["value"] == 2.0 and calm_first[0]["updated_at"] is not None
    assert calm_first[0]["dwell_ms"] == 800
    # button click answers too (server dwell)
    bench.answers.children[1].click()  # test_binary = 1 on image 2 (already 0: updated)
    assert "How calm" in bench.question.value
    bench.close()
    # a new workbench resumes at image 2, question calm
    again = TaggingWorkbench(tagged_ws, rater="alice", attributes=["test_binary", "calm"])
    assert again.item.position == 2 and "How calm" in again.question.value
    again.press("5", 100.0)
    assert again.item.position == 3
    again.press("S", 200.0)  # skip image 3
    assert again.item.position == 4
    with tagged_ws.engine.connect() as c:
        statuses = dict(
            c.execute(
                sa.select(Assignment.position, Assignment.status).where(Assignment.rater == "alice")
            ).all()
        )
    assert statuses == {1: "done", 2: "done", 3: "skipped", 4: "assigned"}
    rows = _ratings(tagged_ws)
    assert [(r["position"], r["attribute"]) for r in rows] == [
        (1, "test_binary"),
        (1, "calm"),
        (2, "test_binary"),
        (2, "calm"),
    ]
    assert all(r["dwell_ms"] > 0 and r["mode"] == "blind" and r["rater"] == "alice" for r in rows)
    assert len({r["session_id"] for r in rows}) == 2
    assert progress(tagged_ws, "s", "alice") == {"done": 3, "total": 12, "remaining": 9}


def test_rater_defaults_to_workspace_user(tagged_ws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    create_study(tagged_ws, "s", raters_per_image=1)
    monkeypatch.setenv("JUPYTERHUB_USER", "hubuser")
    bench = TaggingWorkbench(tagged_ws, attributes=["test_binary"])
    assert bench.rater == tagged_ws.user
    bench.press("0")
    assert _ratings(tagged_ws)[0]["rater"] == tagged_ws.user


def test_assisted_mode_shows_vlm_answer(tagged_ws: Any) -> None:
    create_study(tagged_ws, "s", raters_per_image=1, mode="assisted", seed=2)
    ids = tagged_ws.images().index.tolist()
    import pandas as pd

    add_ratings(
        tagged_ws,
        pd.DataFrame({"image_id": ids, "attribute": "test_binary", "value": 1, "rater": "vlm:model"}),
        source="vlm",
    )
    bench = TaggingWorkbench(tagged_ws, rater="bob", attributes=["test_binary"])
    assert "Model's answer: <b>Yes</b>" in bench.assist.value
    bench.press("0")
    assert _ratings(tagged_ws)[0]["mode"] == "assisted"


def test_finishing_the_queue(tagged_ws: Any) -> None:
    create_study(tagged_ws, "s", raters_per_image=1, images=tagged_ws.images().index.tolist()[:2])
    bench = TaggingWorkbench(tagged_ws, rater="c", attributes=["setting"])
    bench.press("1")
    bench.press("2")
    assert bench.finished and "All done" in bench.question.value
    assert bench.progress == "All done: 2 of 2 images"
    assert bench.key_catcher.watched_keys == ["ArrowLeft", "Backspace"]  # back still works
    assert "itagger-done" in bench._dom_classes
    bench.press("ArrowLeft")
    assert not bench.finished and "Which setting?" in bench.question.value
    assert "itagger-done" not in bench._dom_classes
    assert [r["value_text"] for r in _ratings(tagged_ws)] == ["interior", "exterior"]
