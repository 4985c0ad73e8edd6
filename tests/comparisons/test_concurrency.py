"""Raters arriving at once get distinct numbers (so the balance over raters holds), and an
export without comparative studies writes empty files with their columns."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from itagger_lib.comparisons.frames import CHOICE_COLUMNS
from itagger_lib.comparisons.queue import next_trial

TRIALS = "comparison_trials"


def test_raters_starting_together_get_distinct_numbers(workspace, scene_dir: Path) -> None:  # type: ignore[no-untyped-def]
    workspace.ingest(scene_dir, progress=False)
    workspace.create_study(
        "p", design="pairwise", question="coherence", pairs_per_image=6, raters_per_image=6
    )
    raters = [f"r{k}" for k in range(6)]
    with ThreadPoolExecutor(6) as pool:
        trials = list(pool.map(lambda r: next_trial(workspace, "p", r), raters))
    assert all(t is not None for t in trials)
    with workspace.engine.connect() as connection:
        rows = connection.execute(
            sa.text(
                f"SELECT rater, min(rater_index), max(rater_index), count(*) FROM {TRIALS} GROUP BY rater"
            )
        ).all()
    assert sorted(r[1] for r in rows) == list(range(6)) and all(r[1] == r[2] for r in rows)
    assert {r[3] for r in rows} == {6}  # ⌈11·6/12⌉ pairs each


def test_export_without_comparative_studies(workspace, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    files = workspace.export(tmp_path / "out", format="studies")
    assert [f.name for f in files] == ["choices.parquet"]
    assert list(pd.read_parquet(files[0]).columns) == list(CHOICE_COLUMNS)
    assert workspace.choices().empty
