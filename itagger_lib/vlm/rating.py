"""``rate_with_vlm``: plan a VLM run, then (unless it is a dry run) execute it.

The one entry point a notebook or the CLI calls (``ws.rate_with_vlm``): what is sent and at
what bound is :func:`~itagger_lib.vlm.plan.plan_rating`, sending it under a hard budget is
:func:`~itagger_lib.vlm.execute.execute`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from itagger_lib.vlm.execute import execute
from itagger_lib.vlm.plan import check_counts, plan_rating

if TYPE_CHECKING:
    from itagger_lib._types import ImageSelection
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context
    from itagger_lib.vlm.plan import SampleSpec
    from itagger_lib.vlm.report import VLMReport

__all__ = ["rate_with_vlm"]


def rate_with_vlm(
    ctx: Context,
    images: ImageSelection = None,
    attributes: Iterable[str] | None = None,
    provider: str | None = None,
    model: str | None = None,
    sample: SampleSpec = None,
    repeats: int = 1,
    temperature: float = 0.0,
    seed: int | None = None,
    max_tokens: int | None = None,
    concurrency: int = 8,
    budget_usd: float | None = None,
    dry_run: bool = False,
    force: bool = False,
    rationale: bool = False,
    progress: bool = True,
    *,
    codebook: CodebookRef = None,
    sample_seed: int | None = None,
    timeout: float = 60.0,
    max_retries: int = 5,
    retry_base_s: float = 0.5,
    long_side: int = 1024,
    provider_options: Mapping[str, Any] | None = None,
) -> VLMReport:
    """Rate images with a VLM under a hard budget; returns a :class:`~itagger_lib.vlm.report.VLMReport`.

    Parameters
    ----------
    images
        Image ids or SHA-256 prefixes, a DataFrame indexed by id, or ``None`` for all.
    attributes
        Codebook keys to ask for (default: all attributes of the codebook).
    provider, model
        Registry name and model; default from the ``vlm.provider`` / ``vlm.model`` settings,
        then ``ITAGGER_VLM_PROVIDER`` / ``ITAGGER_VLM_MODEL``, then the API key present.
    sample
        ``None`` (all), ``N`` (random, seed recorded), ``"unrated"``, or
        ``{"n": N, "by": {image_id: stratum}, "seed": S, "unrated": True}``.
    repeats
        Calls per image (repeat index 0..repeats-1, part of the cache key).
    temperature, seed, max_tokens
        Sampling of the model; ``max_tokens`` bounds each answer (default 400, 700 with a
        rationale).
    concurrency
        Requests in flight at once.
    budget_usd
        Hard budget of this run; the workspace budget is the setting ``vlm.budget_usd``.
    dry_run
        Count requests and estimate the cost; send nothing.
    force
        Ask again even when the cache has an answer (the new ratings replace the old ones).
    rationale
        Ask for, and store, a short rationale with each answer.
    progress
        Show a progress bar.
    codebook
        The codebook whose attributes are asked (default the newest stored one).
    sample_seed
        Seed of the random sample (drawn and recorded when omitted).
    timeout, max_retries, retry_base_s
        Seconds per request; retries of what is worth retrying, with exponential backoff.
    long_side
        The long side in pixels of the JPEG sent.
    provider_options
        Passed to the provider (``base_url``, ``api_key``, ``http``, ``token_limit``, ...).
    """
    check_counts(repeats=repeats, concurrency=concurrency)
    plan = plan_rating(
        ctx,
        images,
        attributes,
        provider,
        model,
        sample,
        repeats,
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
    if dry_run:
        return plan.report(dry_run=True)
    return execute(
        ctx,
        plan,
        budget_usd=budget_usd,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_base_s=retry_base_s,
        progress=progress,
    )
