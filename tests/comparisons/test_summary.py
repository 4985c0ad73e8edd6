"""The review of comparative studies: one table per study (people, the VLM against people),
and the section of ``notebooks/03_Review.ipynb`` that shows it."""

from __future__ import annotations

from pathlib import Path

import pytest

from itagger_lib.comparisons.queue import next_trial, record_choice
from itagger_lib.comparisons.summary import SUMMARY_COLUMNS, comparison_summary
from tests.comparisons.conftest import SCENES

REPO = Path(__file__).resolve().parents[2]


def _study_with_people_and_a_vlm(ws, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ws.ingest(scene_dir, progress=False)
    names = ws.images()["source_name"]
    truth = {int(i): SCENES[n] for i, n in names.items()}
    ws.create_study(
        "p", design="pairwise", question="spaciousness", pairs_per_image=8, raters_per_image=4, seed=1
    )
    for rater in ("ann", "bob", "cy", "dee"):
        while (trial := next_trial(ws, "p", rater)) is not None:
            left, right = trial.items
            record_choice(ws, trial, left if truth[left] >= truth[right] else right, rater=rater)
    ws.judge_with_vlm("p", provider="stub", model="stub")


def test_summary_has_people_and_the_vlm(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    assert comparison_summary(workspace).empty
    _study_with_people_and_a_vlm(workspace, scene_dir)
    runs_before = len(workspace.runs("study_scores"))
    summary = comparison_summary(workspace).set_index("rater")
    assert set(summary.reset_index().columns) == set(SUMMARY_COLUMNS)
    people, vlm = summary.loc["people"], summary.loc["vlm:stub/stub@cmp-2"]
    assert people["raters"] == 4 and people["judgements"] == 4 * 11
    assert people["split_half"] > 0.5 and people["circular_triad_share"] == 0.0
    assert vlm["judgements"] == 11 and vlm["images_compared"] == 11
    assert -1.0 <= vlm["spearman_with_people"] <= 1.0
    assert len(workspace.runs("study_scores")) == runs_before  # looking records nothing


@pytest.mark.notebooks
def test_review_notebook_shows_the_section(
    scene_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One kernel run, on SQLite: the summary itself is tested on both databases above."""
    import nbclient
    import nbformat

    from itagger_lib import Workspace

    url = f"sqlite:///{tmp_path / 'itagger.db'}"
    workspace = Workspace(url, tmp_path / "store", home=tmp_path, user="tester")
    _study_with_people_and_a_vlm(workspace, scene_dir)
    env = {
        "ITAGGER_HOME": str(workspace.home),
        "ITAGGER_DATABASE_URL": workspace.settings.database_url,
        "ITAGGER_STORE": str(workspace.store.root),
        "ITAGGER_USER": "tester",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(str(REPO / "notebooks" / "03_Review.ipynb"), 4)
    nbclient.NotebookClient(notebook, timeout=180, kernel_name="python3").execute()
    section = next(
        c for c in notebook.cells if c.cell_type == "code" and "comparison_summary" in "".join(c.source)
    )
    text = "".join(str(o.get("data", {}).get("text/plain", "")) + o.get("text", "") for o in section.outputs)
    assert "spearman_with_people" in text and "vlm:stub/stub@cmp-2" in text and "score" in text
