"""Reading comparative judgements: the long format (one row per judged trial).

The one reader of ``comparison_trials`` and ``comparison_choices`` for scores, exports and
notebooks, as :mod:`itagger_lib.ratings.frames` is for ratings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from itagger_lib.db.models import ComparisonChoice, ComparisonTrial, Study
from itagger_lib.ratings.studies import get_study

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.ratings.studies import StudyRef

__all__ = ["CHOICE_COLUMNS", "choices_frame"]

CHOICE_COLUMNS = (
    "choice_id", "study", "design", "trial_id", "rater", "rater_index", "source", "position",
    "items", "best", "worst", "tie", "dwell_ms", "session_id", "run_id", "chosen_at", "updated_at",
)  # fmt: skip


def choices_frame(ctx: Context, study: StudyRef | None = None, source: str | None = None) -> pd.DataFrame:
    """The judgements of comparative studies in long format, one row per judged trial.

    ``items``: the image ids shown, left to right, separated by spaces; ``best``: the image
    chosen (pairwise) or chosen best; ``worst``: the other image (pairwise) or the one
    chosen worst; ``tie``: a pairwise tie (``best`` and ``worst`` missing). ``study`` (a
    study or ``None`` for every comparative study) and ``source`` (``human``, ``vlm`` or
    ``None`` for both) filter. Sorted by study, rater and position.
    """
    query = (
        sa.select(
            ComparisonChoice.id.label("choice_id"),
            Study.name.label("study"),
            Study.design["type"].as_string().label("design"),
            ComparisonTrial.id.label("trial_id"),
            ComparisonChoice.rater,
            ComparisonTrial.rater_index,
            ComparisonChoice.source,
            ComparisonTrial.position,
            ComparisonTrial.items,
            ComparisonChoice.best_image_id.label("best"),
            ComparisonChoice.worst_image_id.label("worst"),
            ComparisonChoice.tie,
            ComparisonChoice.dwell_ms,
            ComparisonChoice.session_id,
            ComparisonChoice.run_id,
            ComparisonChoice.chosen_at,
            ComparisonChoice.updated_at,
        )
        .join(ComparisonTrial, ComparisonTrial.id == ComparisonChoice.trial_id)
        .join(Study, Study.id == ComparisonChoice.study_id)
        .order_by(Study.id, ComparisonChoice.rater, ComparisonTrial.position)
    )
    if study is not None:
        query = query.where(ComparisonChoice.study_id == get_study(ctx, study).id)
    if source is not None:
        query = query.where(ComparisonChoice.source == source)
    with ctx.engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    frame = pd.DataFrame([dict(r) for r in rows], columns=list(CHOICE_COLUMNS))
    frame["items"] = [" ".join(str(int(i)) for i in items) for items in frame["items"]]
    for column in ("best", "worst", "run_id", "dwell_ms"):
        frame[column] = frame[column].astype("Int64")
    frame["tie"] = frame["tie"].astype(bool)
    return frame
