"""One table of every comparative study: judgements, reliability, and the VLM against people.

What the review notebook shows for pairwise and best–worst studies, as ``ws.agreement()``
does for Likert ratings: per study and source (people; each VLM rater), the judgements and
raters, split-half reliability, the share of circular triads (pairwise) and, for the VLM,
the Spearman correlation of its scores with people's over the images both judged — its
agreement with the human scale — beside the human split-half reliability, the ceiling a
rater of the same study could reach.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd
from scipy.stats import spearmanr

from itagger_lib.comparisons.frames import choices_frame
from itagger_lib.comparisons.scores import score_study
from itagger_lib.comparisons.studies import is_comparative
from itagger_lib.ratings.studies import list_studies

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = ["SUMMARY_COLUMNS", "comparison_summary"]

SUMMARY_COLUMNS = (
    "study", "design", "rater", "judgements", "raters", "split_half", "circular_triad_share",
    "spearman_with_people", "images_compared",
)  # fmt: skip


def comparison_summary(ctx: Context) -> pd.DataFrame:
    """Per comparative study: a row for people's judgements and one for the VLM's (several VLM
    raters of one study are pooled; their names are listed). No runs are recorded: the
    scores are computed to be looked at."""
    rows: list[dict[str, Any]] = []
    choices = choices_frame(ctx)
    for info in (s for s in list_studies(ctx) if is_comparative(s)):
        mine = choices[choices["study"] == info.name]
        people = mine[mine["source"] == "human"]
        human = _scores(ctx, info.id, "human") if not people.empty else None
        if human is not None:
            rows.append(_row(info.name, info.design["type"], "people", people, human, None))
        machines = mine[mine["source"] == "vlm"]
        if not machines.empty:
            names = ", ".join(sorted(set(machines["rater"])))
            vlm = _scores(ctx, info.id, "vlm")
            rows.append(_row(info.name, info.design["type"], names, machines, vlm, human))
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def _scores(ctx: Context, study: int, source: str) -> pd.DataFrame:
    return score_study(ctx, study, source, n_splits=10, record=False)


def _row(
    study: str,
    design: str,
    rater: str,
    choices: pd.DataFrame,
    scores: pd.DataFrame,
    human: pd.DataFrame | None,
) -> dict[str, Any]:
    reliability = scores.attrs["reliability"]
    row: dict[str, Any] = {
        "study": study,
        "design": design,
        "rater": rater,
        "judgements": len(choices),
        "raters": choices["rater"].nunique(),
        "split_half": reliability.get("split_half"),
        "circular_triad_share": reliability.get("circular_triad_share"),
        "spearman_with_people": None,
        "images_compared": None,
    }
    if human is not None:
        both = scores.index[(scores["shown"] > 0) & (human.reindex(scores.index)["shown"] > 0)]
        row["images_compared"] = len(both)
        if len(both) >= 3:
            row["spearman_with_people"] = float(
                spearmanr(scores.loc[both, "score"], human.loc[both, "score"]).statistic
            )
    return row
