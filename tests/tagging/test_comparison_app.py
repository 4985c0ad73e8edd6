"""The comparison screen of the tagging app, driven by keys as the browser sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from itagger_lib.comparisons.queue import rater_trials
from itagger_lib.widgets.comparison import ComparisonWorkbench
from itagger_lib.widgets.tagging_app import tagging_app
from tests.comparisons.conftest import scene_dir  # noqa: F401 - the fixture


@pytest.fixture
def ws(workspace, scene_dir: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    workspace.ingest(scene_dir, progress=False)
    return workspace


def test_pairwise_keys_save_choices_and_resume(ws) -> None:  # type: ignore[no-untyped-def]
    ws.create_study(
        "pairs", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1, ties=True
    )
    app = tagging_app(ws, "pairs")
    assert isinstance(app, ComparisonWorkbench) and "itagger-app" in app._dom_classes
    assert app.progress == "Pair 1 of 11"
    assert {"ArrowLeft", "ArrowRight", "ArrowDown", "=", "Backspace"} <= set(app.key_catcher.watched_keys)
    first = app.trial
    app.press("ArrowLeft", 1000.0)
    assert "✓ Saved" in app.message.value and app.progress == "Pair 2 of 11"
    second = app.trial
    app.press("ArrowRight", 1800.0)
    app.press("=", 2500.0)  # a tie
    choices = ws.choices("pairs", source="human")
    assert list(choices["best"][:2]) == [first.items[0], second.items[1]]
    assert choices["tie"].tolist() == [False, False, True]
    assert choices["dwell_ms"].tolist()[1:] == [800, 700]
    app.press("Backspace")  # back to the tie, and change it
    assert app.progress == "Pair 3 of 11"
    app.press("ArrowLeft")
    assert ws.choices("pairs")["tie"].tolist() == [False, False, False] and app.progress == "Pair 4 of 11"
    app.press("s")  # skip
    app.close()
    again = ComparisonWorkbench(ws, "pairs", rater=ws.user)  # a reload resumes at the first open trial
    assert again.progress == "Pair 5 of 11"
    for _ in range(7):
        again.press("ArrowRight")
    assert again.finished and "All done" in again.question.value
    assert [t.status for t in rater_trials(ws, "pairs", ws.user)].count("skipped") == 1
    assert len(ws.choices("pairs")) == 10


def test_no_tie_key_without_ties(ws) -> None:  # type: ignore[no-untyped-def]
    ws.create_study("strict", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1)
    app = ComparisonWorkbench(ws, "strict")
    assert "=" not in app.key_catcher.watched_keys and "No difference" not in app.help.value
    app.press("=")
    assert app.progress == "Pair 1 of 11" and ws.choices("strict").empty


def test_best_worst_keys(ws) -> None:  # type: ignore[no-untyped-def]
    ws.create_study(
        "bw", design="best_worst", question="coherence", trials_per_image=2, raters_per_image=1,
        avoid_near_duplicates="rater", block_size=4,
    )  # fmt: skip
    app = tagging_app(ws, "bw")
    assert isinstance(app, ComparisonWorkbench) and app.progress.startswith("Set 1 of ")
    trial = app.trial
    app.press("2")
    assert "least" in app.question.value and "itagger-best" in app.figures[1]._dom_classes
    app.press("2")  # the same image cannot be both
    assert app.trial == trial
    app.press("Backspace")  # undoes the best choice
    assert app.pending_best is None and "most" in app.question.value
    app.press("3")
    app.press("1")
    row = ws.choices("bw").iloc[0]
    assert (row["best"], row["worst"]) == (trial.items[2], trial.items[0])
    assert app.progress.startswith("Set 2 of ")
