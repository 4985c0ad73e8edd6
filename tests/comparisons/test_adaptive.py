"""Adaptive pairwise studies: the balanced half first, then batches by information gain."""

from __future__ import annotations

from pathlib import Path

import pytest

from itagger_lib.comparisons.queue import next_trial, rater_trials, record_choice, trial_progress
from itagger_lib.errors import AssignmentError
from itagger_lib.widgets.comparison import ComparisonWorkbench
from tests.comparisons.conftest import SCENES


def test_adaptive_batches_follow_the_balanced_half(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    truth = {int(i): SCENES[n] for i, n in workspace.images()["source_name"].items()}
    study = workspace.create_study(
        "a",
        design="pairwise",
        question="coherence",
        pairs_per_image=4,
        raters_per_image=1,
        seed=3,
        adaptive=True,
    )
    assert study.design["trials_per_rater"] == 22 and study.design["balanced_trials"] == 11
    first = next_trial(workspace, "a", "ann")
    assert first is not None and len(rater_trials(workspace, "a", "ann")) == 11  # the balanced half only
    assert trial_progress(workspace, "a", "ann")["total"] == 22
    while (trial := next_trial(workspace, "a", "ann")) is not None:
        left, right = trial.items
        record_choice(workspace, trial, left if truth[left] >= truth[right] else right, rater="ann")
    trials = rater_trials(workspace, "a", "ann")
    assert len(trials) == 22 and all(t.status == "done" for t in trials)
    pairs = [frozenset(t.items) for t in trials]
    assert len(set(pairs)) == 22  # no pair twice
    groups = workspace.near_duplicates()["group"]
    assert all(groups[a] != groups[b] for a, b in (t.items for t in trials))
    assert trial_progress(workspace, "a", "ann") == {"done": 22, "total": 22, "remaining": 0}
    with pytest.raises(AssignmentError, match="adaptive schedules are for pairwise studies only"):
        workspace.create_study("b", design="best_worst", question="coherence", adaptive=True)


def test_the_app_reaches_the_adaptive_batches(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    workspace.create_study(
        "a", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1, adaptive=True
    )
    app = ComparisonWorkbench(workspace, "a")
    assert app.progress == "Pair 1 of 11"
    for _ in range(11):
        app.press("ArrowLeft")
    assert app.finished and len(workspace.choices("a")) == 11
