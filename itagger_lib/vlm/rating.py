"""``rate_with_vlm``: plan a VLM run, then (unless it is a dry run) execute it.

The one entry point a notebook or the CLI calls (``ws.rate_with_vlm``): what is sent and at
what bound is :func:`~itagger_lib.vlm.plan.plan_rating`, sending it under a hard budget is
:func:`~itagger_lib.vlm.execute.execute`, or, with ``mode="batch"``,
:func:`~itagger_lib.vlm.batch_submit.submit` after collecting what earlier batches of this
model have answered (:func:`~itagger_lib.vlm.batches.refresh`), so a rerun collects and
sends only what is neither answered nor in flight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from itagger_lib.vlm.execute import execute
from itagger_lib.vlm.plan import MODES, check_counts, plan_rating
from itagger_lib.vlm.registry import resolve

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
    mode: str = "interactive",
    wait_s: float = 0.0,
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
    mode
        ``"interactive"`` (requests one at a time, answers now) or ``"batch"``: the
        provider's batch API (OpenAI Batch, Anthropic Message Batches) at its batch prices,
        answers within 24 hours. A batch run submits and returns; a rerun (or
        ``ws.vlm_batches()``) collects what has ended and never sends again what is in flight.
    wait_s
        In batch mode, seconds to wait for the submitted batches to end and collect them
        (0: submit and return).
    """
    check_counts(repeats=repeats, concurrency=concurrency)
    if mode not in MODES:
        from itagger_lib.errors import ArgumentError

        raise ArgumentError(f"mode={mode!r}: use 'interactive' (one request at a time) or 'batch'")
    collected = None
    if mode == "batch" and not dry_run:
        from itagger_lib.vlm.batches import refresh

        provider, model = resolve(ctx, provider, model)
        collected = refresh(ctx, provider=provider, model=model)
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
        mode=mode,
    )
    if dry_run:
        return plan.report(dry_run=True)
    if mode == "batch":
        return _batch(
            ctx, plan, collected, budget_usd, concurrency, timeout, max_retries, retry_base_s, wait_s
        )
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


def _batch(
    ctx: Context,
    plan: Any,
    collected: Any,
    budget_usd: float | None,
    concurrency: int,
    timeout: float,
    max_retries: int,
    retry_base_s: float,
    wait_s: float,
) -> VLMReport:
    """Submit ``plan`` as provider batches, wait up to ``wait_s`` and collect; one report."""
    from itagger_lib.vlm.batch_submit import submit
    from itagger_lib.vlm.batches import wait_for

    report = submit(
        ctx,
        plan,
        budget_usd=budget_usd,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_base_s=retry_base_s,
    )
    steps = [collected]
    if wait_s > 0 and (report.submitted or report.in_flight):
        steps.append(wait_for(ctx, None, wait_s, provider=plan.provider, model=plan.model))
    for step in steps:
        if step is not None:
            report.collected += step.collected
            report.succeeded += step.succeeded
            report.failed += step.failed
            report.spend_usd += step.spend_usd
            report.notes += step.notes
    if len(steps) > 1:  # some of what was in flight may have been collected meanwhile
        report.in_flight = len(open_waiting(ctx, plan))
    return report


def open_waiting(ctx: Context, plan: Any) -> set[str]:
    """Cache keys of ``plan``'s jobs still waiting in an open batch."""
    from itagger_lib.vlm.ledger import open_keys

    return open_keys(ctx, [job.cache_key for job in plan.jobs])
