"""Exports of pairwise and best–worst studies: the judgements in long format and the scores
per image, each file with its provenance.

Registered in :mod:`itagger_lib.export.formats` as ``studies`` (Parquet) and
``studies-csv`` (CSV with ``.json`` sidecars). Files:

* ``choices.<ext>``: every judgement of every comparative study, one row per trial
  (:func:`~itagger_lib.comparisons.frames.choices_frame`: trial, rater, the items shown
  left to right, best, worst, tie, source, timing);
* ``scores.<study id>.<ext>``, one per study with judgements: the scores per image of
  people's judgements (:func:`~itagger_lib.comparisons.scores.study_scores`), their
  provenance carrying the scoring run, its parameters' hash, the package version and the
  study's reliability figures; ``scores.<study id>.vlm.<ext>`` likewise for VLM judgements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itagger_lib.comparisons.frames import choices_frame
from itagger_lib.comparisons.scores import study_scores
from itagger_lib.comparisons.studies import is_comparative
from itagger_lib.export.files import write_csv, write_parquet
from itagger_lib.export.provenance import provenance_of
from itagger_lib.ratings.studies import list_studies

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from itagger_lib.context import Context

__all__ = ["StudiesExport"]


class StudiesExport:
    """``choices`` and ``scores.<study id>`` of every comparative study, in Parquet or CSV."""

    def __init__(self, ext: str) -> None:
        self.ext = ext
        self.writer = write_parquet if ext == "parquet" else write_csv

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        studies = [s for s in list_studies(ctx) if is_comparative(s)]
        choices = choices_frame(ctx)
        runs = {int(r) for r in choices["run_id"].dropna()}
        stamp: dict[str, Any] = {
            **provenance_of(ctx, {s.codebook_id for s in studies}, runs, None),
            "studies": [
                {
                    "id": s.id,
                    "name": s.name,
                    "seed": s.seed,
                    **{k: v for k, v in s.design.items() if k not in ("images", "groups")},
                }
                for s in studies
            ],
        }
        written = [self.writer(choices, folder / f"choices.{self.ext}", stamp)]
        for info in studies:
            for source, suffix in (("human", ""), ("vlm", ".vlm")):
                if not (choices["study"].eq(info.name) & choices["source"].eq(source)).any():
                    continue
                scores = study_scores(ctx, info.id, source)
                own = {
                    **provenance_of(ctx, {info.codebook_id}, {scores.attrs["provenance"]["run_id"]}, None),
                    "study": {"id": info.id, "name": info.name, "design": info.design["type"]},
                    "scores": scores.attrs["provenance"],
                    "reliability": scores.attrs["reliability"],
                }
                path = folder / f"scores.{info.id}{suffix}.{self.ext}"
                written.append(self.writer(scores, path, own))
        return written
