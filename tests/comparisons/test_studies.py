"""Pairwise and best–worst studies end to end: schedules stored per rater, choices, scores
with intervals and reliability, long-format exports with provenance."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from itagger_lib.comparisons.queue import (
    next_trial,
    rater_trials,
    record_choice,
    skip_trial,
    trial_progress,
)
from itagger_lib.errors import AssignmentError, RatingError
from itagger_lib.export.provenance import read_provenance
from tests.comparisons.conftest import SCENES


def _setup(workspace, scene_dir: Path) -> dict[int, float]:  # type: ignore[no-untyped-def]
    """Ingest the scenes; the true strength of an image: its scene number (ties within a scene
    broken by file name)."""
    workspace.ingest(scene_dir, progress=False)
    images = workspace.images()
    order = sorted(
        images.index, key=lambda i: (SCENES[images.loc[i, "source_name"]], images.loc[i, "source_name"])
    )
    return {int(i): float(rank) for rank, i in enumerate(order)}


def _groups(workspace) -> dict[int, int]:  # type: ignore[no-untyped-def]
    return {int(i): int(g) for i, g in workspace.near_duplicates()["group"].items()}


def _judge_all(workspace, study: str, raters: list[str], choose) -> int:  # type: ignore[no-untyped-def]
    n = 0
    for rater in raters:
        while (trial := next_trial(workspace, study, rater)) is not None:
            best, worst, tie = choose(trial)
            record_choice(workspace, trial, best, worst, tie=tie, rater=rater, dwell_ms=900)
            n += 1
    return n


def test_pairwise_study_end_to_end(workspace, scene_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    truth = _setup(workspace, scene_dir)
    study = workspace.create_study(
        "safer", design="pairwise", question="spaciousness", pairs_per_image=12, raters_per_image=3, seed=5
    )
    assert study.design["type"] == "pairwise" and study.design["trials_per_rater"] == 22  # ⌈11·12/6⌉
    assert "spacious" in study.design["prompt"]
    raters = ["ann", "bob", "cy"]

    def consistent(trial):  # type: ignore[no-untyped-def]
        left, right = trial.items
        return (left, right, False) if truth[left] > truth[right] else (right, left, False)

    assert _judge_all(workspace, "safer", raters, consistent) == 66
    groups = _groups(workspace)
    seen: Counter[int] = Counter()
    for rater in raters:
        trials = rater_trials(workspace, "safer", rater)
        pairs = [frozenset(t.items) for t in trials]
        assert len(set(pairs)) == len(pairs)  # no pair twice to one rater
        assert all(groups[a] != groups[b] for a, b in (t.items for t in trials))  # near-duplicates apart
        assert all(t.status == "done" for t in trials)
        assert trial_progress(workspace, "safer", rater) == {"done": 22, "total": 22, "remaining": 0}
        seen.update(i for t in trials for i in t.items)
    assert set(seen) == set(truth) and max(seen.values()) - min(seen.values()) <= 1  # balanced ±1

    scores = workspace.study_scores("safer")
    assert list(scores.columns[:6]) == ["source_name", "score", "se", "low", "high", "shown"]
    assert len(scores) == len(truth)
    rho = spearmanr(scores["score"], [truth[i] for i in scores.index]).statistic
    assert rho > 0.9
    assert ((scores["low"] < scores["score"]) & (scores["score"] < scores["high"])).all()
    assert (scores["wins"] + scores["losses"] + scores["ties"] == scores["shown"]).all()
    reliability = scores.attrs["reliability"]
    assert reliability["circular_triad_share"] == 0.0  # consistent judges make no cycles
    assert reliability["split_half"] > 0.5 and reliability["raters"] == 3
    provenance = scores.attrs["provenance"]
    again = workspace.study_scores("safer")
    assert again.attrs["provenance"]["params_hash"] == provenance["params_hash"]
    assert again.attrs["provenance"]["run_id"] != provenance["run_id"]
    runs = workspace.runs("study_scores")
    assert set(runs["status"]) == {"succeeded"} and (runs["params_hash"] == provenance["params_hash"]).all()

    choices = workspace.choices("safer")
    assert len(choices) == 66 and set(choices["rater"]) == set(raters)
    first = choices.iloc[0]
    shown = [int(i) for i in first["items"].split()]
    assert first["best"] in shown and first["worst"] in shown and not first["tie"]

    files = workspace.export(tmp_path / "out", format="studies")
    assert [f.name for f in files] == ["choices.parquet", f"scores.{study.id}.parquet"]
    written = pd.read_parquet(files[0])
    assert len(written) == 66 and {"trial_id", "rater", "items", "best", "worst", "tie"} <= set(
        written.columns
    )
    stamp = read_provenance(files[1])
    assert stamp["scores"]["params_hash"] == provenance["params_hash"]
    assert stamp["reliability"]["circular_triad_share"] == 0.0
    assert read_provenance(files[0])["studies"][0]["type"] == "pairwise"
    csv_files = workspace.export(tmp_path / "csv", format="studies-csv")
    from_csv = pd.read_csv(csv_files[1]).set_index("image_id")
    assert np.allclose(from_csv["score"], scores["score"]) and list(from_csv.index) == list(scores.index)
    assert Path(f"{csv_files[0]}.json").is_file()


def test_ties_only_where_the_study_allows_them(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(workspace, scene_dir)
    workspace.create_study(
        "strict", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1
    )
    trial = next_trial(workspace, "strict", "ann")
    with pytest.raises(RatingError, match=r"study 'strict'.*does not allow ties"):
        record_choice(workspace, trial, tie=True, rater="ann")
    with pytest.raises(RatingError, match="is not one of the two shown"):
        record_choice(workspace, trial, best=10**6, rater="ann")
    with pytest.raises(RatingError, match="belongs to 'ann', not 'bob'"):
        record_choice(workspace, trial, best=trial.items[0], rater="bob")
    assert next_trial(workspace, "strict", "ann") == trial  # nothing stored on refusal

    workspace.create_study("lenient", design="pairwise", question="coherence", pairs_per_image=2, ties=True)
    trial = next_trial(workspace, "lenient", "ann")
    record_choice(workspace, trial, tie=True, rater="ann")
    row = workspace.choices("lenient").iloc[0]
    assert bool(row["tie"]) and pd.isna(row["best"]) and pd.isna(row["worst"])
    # going back and choosing replaces the tie
    record_choice(workspace, trial, best=trial.items[1], rater="ann")
    choices = workspace.choices("lenient")
    assert len(choices) == 1 and choices.iloc[0]["best"] == trial.items[1] and not choices.iloc[0]["tie"]
    assert choices.iloc[0]["updated_at"] is not None
    skip_trial(workspace, next_trial(workspace, "lenient", "ann"), rater="ann")
    assert trial_progress(workspace, "lenient", "ann")["done"] == 2


def test_raters_get_consecutive_numbers_and_their_own_schedules(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(workspace, scene_dir)
    workspace.create_study(
        "s", design="pairwise", question="coherence", pairs_per_image=4, raters_per_image=2, seed=3
    )
    first = next_trial(workspace, "s", "ann")
    assert next_trial(workspace, "s", "ann") == first  # asking again writes nothing new
    next_trial(workspace, "s", "bob")
    with workspace.engine.connect() as connection:
        rows = pd.read_sql(
            "SELECT rater, rater_index, count(*) AS n FROM comparison_trials GROUP BY rater, rater_index",
            connection,
        )
    assert dict(zip(rows["rater"], rows["rater_index"], strict=True)) == {"ann": 0, "bob": 1}
    assert set(rows["n"]) == {11}
    a = [t.items for t in rater_trials(workspace, "s", "ann")]
    b = [t.items for t in rater_trials(workspace, "s", "bob")]
    assert a != b


def test_study_arguments_are_checked(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(workspace, scene_dir)
    with pytest.raises(AssignmentError, match="needs question=<attribute key>"):
        workspace.create_study("x", design="pairwise")
    with pytest.raises(AssignmentError, match="design 'triplet' is not one of likert, pairwise, best_worst"):
        workspace.create_study("x", design="triplet", question="coherence")
    with pytest.raises(AssignmentError, match="block_size must be from 3 to 8"):
        workspace.create_study("x", design="best_worst", question="coherence", block_size=12)
    with pytest.raises(AssignmentError, match="retest_share and gold are for Likert studies"):
        workspace.create_study("x", design="pairwise", question="coherence", retest_share=0.1)
    assert workspace.create_study("likert").design.get("type") is None  # the default is unchanged
    with pytest.raises(AssignmentError, match="is a Likert study"):
        next_trial(workspace, "likert", "ann")
    with pytest.raises(Exception, match="no human judgements yet"):
        workspace.create_study("empty", design="pairwise", question="coherence", pairs_per_image=1)
        workspace.study_scores("empty")


def test_best_worst_study_end_to_end(workspace, scene_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    truth = _setup(workspace, scene_dir)
    # a group of 3 among 11 images cannot be kept out of every block of 4 with balance
    with pytest.raises(AssignmentError, match=r"study .bws.*avoid_near_duplicates=.rater."):
        workspace.create_study("bws", design="best_worst", question="restorativeness", raters_per_image=1)
    study = workspace.create_study(
        "bws", design="best_worst", question="restorativeness", trials_per_image=8, block_size=4,
        raters_per_image=2, seed=11, avoid_near_duplicates="rater",
    )  # fmt: skip
    assert study.design["block_size"] == 4 and study.design["trials_per_rater"] == 11  # ⌈11·8/8⌉

    def by_truth(trial):  # type: ignore[no-untyped-def]
        ranked = sorted(trial.items, key=lambda i: truth[i])
        return ranked[-1], ranked[0], False

    assert _judge_all(workspace, "bws", ["ann", "bob"], by_truth) == 22
    groups = _groups(workspace)
    for rater in ("ann", "bob"):
        for trial in rater_trials(workspace, "bws", rater):
            assert len(trial.items) == 4 and len(set(trial.items)) == 4
            assert len({groups[i] for i in trial.items}) == 4  # no two near-duplicates in a trial
        shown = {i for t in rater_trials(workspace, "bws", rater) for i in t.items}
        assert len({groups[i] for i in shown}) == len(shown) == 8  # one member of each group
    trial = rater_trials(workspace, "bws", "ann")[0]
    with pytest.raises(RatingError, match="must be two different images of the trial"):
        record_choice(workspace, trial, trial.items[0], trial.items[0], rater="ann")
    with pytest.raises(RatingError, match="has no ties"):
        record_choice(workspace, trial, tie=True, rater="ann")

    scores = workspace.study_scores("bws")
    assert {"score", "se", "low", "high", "best", "worst", "shown", "count_score"} <= set(scores.columns)
    shown = scores[scores["shown"] > 0]  # members of a group take turns over the two raters
    assert len(shown) == 10 and scores.loc[scores["shown"] == 0, "count_score"].isna().all()
    assert np.allclose(shown["count_score"], (shown["best"] - shown["worst"]) / shown["shown"])
    assert spearmanr(shown["score"], [truth[i] for i in shown.index]).statistic > 0.9
    assert spearmanr(shown["count_score"], shown["score"]).statistic > 0.9
    assert scores.attrs["reliability"]["split_half"] > 0.5
    files = workspace.export(tmp_path / "out", format="studies-csv")
    assert [f.name for f in files] == ["choices.csv", f"scores.{study.id}.csv"]
    long = pd.read_csv(files[0])
    assert (long["design"] == "best_worst").all() and long["items"].str.split().map(len).eq(4).all()


def test_export_from_the_command_line(workspace, scene_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    _setup(workspace, scene_dir)
    study = workspace.create_study(
        "p", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=1, seed=3
    )
    while (trial := next_trial(workspace, "p", "ann")) is not None:
        record_choice(workspace, trial, trial.items[0], rater="ann")
    url = workspace.engine.url.render_as_string(hide_password=False)
    command = [
        sys.executable, "-m", "itagger_lib.cli", "--database-url", url, "--store", str(workspace.store.root),
        "export", str(tmp_path / "cli"), "--format", "studies-csv",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        str(tmp_path / "cli" / "choices.csv"),
        str(tmp_path / "cli" / f"scores.{study.id}.csv"),
    ]
    assert len(pd.read_csv(tmp_path / "cli" / "choices.csv")) == 11


def test_scores_of_a_study_too_small_for_split_halves(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    _setup(workspace, scene_dir)
    workspace.create_study(
        "tiny", design="pairwise", question="coherence", pairs_per_image=1, raters_per_image=1
    )
    trial = next_trial(workspace, "tiny", "ann")
    record_choice(workspace, trial, trial.items[0], rater="ann")  # one judgement: halves share nothing
    scores = workspace.study_scores("tiny")
    assert scores.attrs["reliability"]["split_half"] is None
    assert (
        "split-half reliability needs at least two judgements"
        in scores.attrs["reliability"]["split_half_note"]
    )
    assert scores.loc[trial.items[0], "score"] > scores.loc[trial.items[1], "score"]
