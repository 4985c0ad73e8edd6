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

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from itagger_lib.db.models import Rating, VLMCall
from itagger_lib.errors import ArgumentError
from itagger_lib.vlm.execute import execute
from itagger_lib.vlm.plan import check_counts, plan_rating
from itagger_lib.vlm.primary import AUDIT

if TYPE_CHECKING:
    from itagger_lib._types import ImageSelection
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context
    from itagger_lib.vlm.plan import SampleSpec
    from itagger_lib.vlm.report import VLMReport

__all__ = ["audit_vlm", "consistency"]


def consistency(ratings: pd.DataFrame, collapse_threshold: float = 0.9) -> pd.DataFrame:
    """Per-attribute spread, modal share and collapse flag of repeated answers.

    ``ratings`` is long: columns ``image_id``, ``attribute``, ``answer`` (hashable: the value,
    or text for categorical / multi-label answers) and ``value`` (numeric or NaN).
    """
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
    ctx: Context,
    images: ImageSelection = None,
    k: int = 5,
    temperature: float = 0.7,
    *,
    collapse_threshold: float = 0.9,
    attributes: Iterable[str] | None = None,
    provider: str | None = None,
    model: str | None = None,
    sample: SampleSpec = None,
    sample_seed: int | None = None,
    seed: int | None = None,
    max_tokens: int | None = None,
    concurrency: int = 8,
    budget_usd: float | None = None,
    force: bool = False,
    rationale: bool = False,
    codebook: CodebookRef = None,
    timeout: float = 60.0,
    max_retries: int = 5,
    retry_base_s: float = 0.5,
    long_side: int = 1024,
    provider_options: Mapping[str, Any] | None = None,
    progress: bool = True,
) -> tuple[pd.DataFrame, VLMReport]:
    """Rate ``images`` ``k`` times at ``temperature`` (cached per repeat index) and return
    ``(consistency table, VLMReport)``.

    ``collapse_threshold`` is :func:`consistency`'s; the other parameters are those of
    :func:`~itagger_lib.vlm.rating.rate_with_vlm`. The run records ``purpose: audit``, so its
    answers never stand in for the model's primary run (:mod:`~itagger_lib.vlm.primary`).
    """
    if temperature <= 0:
        raise ArgumentError("a self-consistency audit needs temperature > 0")
    check_counts(repeats=k, concurrency=concurrency)
    plan = plan_rating(
        ctx,
        images,
        attributes,
        provider,
        model,
        sample,
        k,
        temperature,
        seed,
        max_tokens,
        rationale=rationale,
        force=force,
        codebook=codebook,
        sample_seed=sample_seed,
        long_side=long_side,
        provider_options=provider_options,
    )
    # recorded with the run, so its answers never stand in for the model's primary run
    report = execute(
        ctx,
        replace(plan, purpose=AUDIT),
        budget_usd=budget_usd,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_base_s=retry_base_s,
        progress=progress,
    )
    with ctx.engine.connect() as connection:
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


def _calls(report: VLMReport, temperature: float) -> sa.Select:
    """The successful calls of this model and prompt at ``temperature``."""
    return sa.select(VLMCall.id).where(
        VLMCall.prompt_hash == report.prompt_hash,
        VLMCall.provider == report.provider,
        VLMCall.model == report.model,
        VLMCall.status == "ok",
        VLMCall.parameters["temperature"].as_float() == temperature,
    )
