"""Self-consistency audit: ask the same images K times at temperature > 0 and compare.

For each attribute, over the images with at least two answers:

- ``spread``: mean within-image standard deviation of the numeric value (ordinal,
  binary, continuous; categorical answers use their level index), in scale units;
- ``modal_share``: mean share of an image's answers equal to its most common answer
  (1 = the model always gives the same answer to the same image);
- ``overall_modal_share``: share of all answers equal to the single most common one;
- ``collapsed``: ``overall_modal_share ≥ threshold`` (default 0.9) — the model gives nearly
  the same answer whatever the image, so its ratings carry little information.

Reference: Wang et al. (2023), "Self-consistency improves chain of thought reasoning in
language models", ICLR — the repeated-sampling idea applied here to rating stability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from itagger_lib.db.models import Rating

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.workspace import Workspace


def consistency(ratings: pd.DataFrame, collapse_threshold: float = 0.9) -> pd.DataFrame:
    """Per-attribute spread, modal share and collapse flag of repeated answers.

    ``ratings`` is long: columns ``image_id``, ``attribute``, ``answer`` (hashable: the value,
    or text for categorical / multi-label answers) and ``value`` (numeric or NaN).
    """
    import pandas as pd

    rows = []
    for attribute, group in ratings.groupby("attribute", sort=True):
        per_image = group.groupby("image_id")
        sizes = per_image.size()
        repeated = sizes[sizes >= 2].index
        subset = group[group["image_id"].isin(repeated)]
        if subset.empty:
            continue
        modal = subset.groupby("image_id")["answer"].agg(lambda s: s.value_counts().iloc[0] / len(s))
        spread = subset.groupby("image_id")["value"].std(ddof=0)
        overall = subset["answer"].value_counts().iloc[0] / len(subset)
        rows.append(
            {
                "attribute": attribute,
                "images": len(repeated),
                "answers": len(subset),
                "spread": float(spread.mean()) if spread.notna().any() else np.nan,
                "modal_share": float(modal.mean()),
                "overall_modal_share": float(overall),
                "collapsed": bool(overall >= collapse_threshold),
            }
        )
    columns = ["images", "answers", "spread", "modal_share", "overall_modal_share", "collapsed"]
    return pd.DataFrame(rows, columns=["attribute", *columns]).set_index("attribute")


def audit_vlm(
    ws: Workspace,
    images: Any = None,
    k: int = 5,
    temperature: float = 0.7,
    *,
    collapse_threshold: float = 0.9,
    **kwargs: Any,
) -> tuple[pd.DataFrame, Any]:
    """Rate ``images`` ``k`` times at ``temperature`` (cached per repeat index) and return
    ``(consistency table, VLMReport)``; other arguments go to :func:`rate_with_vlm`."""
    import pandas as pd

    from itagger_lib.vlm.engine import rate_with_vlm

    if temperature <= 0:
        raise ValueError("a self-consistency audit needs temperature > 0")
    report = rate_with_vlm(ws, images=images, repeats=k, temperature=temperature, **kwargs)
    with ws.engine.connect() as connection:
        frame = pd.read_sql(
            sa.select(
                Rating.image_id, Rating.attribute, Rating.value, Rating.value_text, Rating.repeat_index
            ).where(
                Rating.rater == report.rater,
                Rating.repeat_index < k,
                Rating.image_id.in_(report.image_ids),
                Rating.vlm_call_id.in_(_calls(report, temperature)),
            ),
            connection,
        )
    frame["answer"] = frame["value_text"].where(frame["value_text"].notna(), frame["value"])
    return consistency(frame, collapse_threshold), report


def _calls(report: Any, temperature: float) -> Any:
    from itagger_lib.db.models import VLMCall

    return sa.select(VLMCall.id).where(
        VLMCall.prompt_hash == report.prompt_hash,
        VLMCall.provider == report.provider,
        VLMCall.model == report.model,
        VLMCall.status == "ok",
        VLMCall.parameters["temperature"].as_float() == temperature,
    )
