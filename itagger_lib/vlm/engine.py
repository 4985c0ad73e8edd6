"""The VLM rating engine: async, bounded concurrency, retries, cache, budget, ledger.

``rate_with_vlm(ws, ...)`` plans the calls (images × repeats), skips those in the cache,
and hands the rest to the :class:`~itagger_lib.vlm.runner.Runner`, which reserves each
request's maximum cost in the ledger before sending it, retries what is worth retrying
(429 with ``Retry-After``, 5xx, timeouts, connection errors: exponential backoff with
jitter), validates each answer against the codebook (one repair attempt), and writes each
call and its ratings in one transaction as it arrives (group-committed by the
:class:`~itagger_lib.vlm.writer.LedgerWriter`). A killed run resumes on rerun without
paying twice for what it already has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from itagger_lib.errors import ConfigError, KillSwitchError, PriceUnknownError
from itagger_lib.runs import close_stale_runs, finish_run, start_run
from itagger_lib.vlm import ledger
from itagger_lib.vlm.planning import choose_images, image_rows, resolve_codebook
from itagger_lib.vlm.prompts import Prompt, build_prompt
from itagger_lib.vlm.registry import VLMRequest, get_provider, input_token_bound, resolve
from itagger_lib.vlm.report import VLMReport
from itagger_lib.vlm.runner import Job, Runner

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

__all__ = ["Job", "rate_with_vlm"]

DEFAULT_MAX_TOKENS = 400
RATIONALE_TOKENS = 300


def planned_input_tokens(
    provider: str,
    model: str,
    prompt: Prompt,
    width: int,
    height: int,
    long_side: int,
    max_tokens: int,
    options: Mapping[str, Any] | None = None,
) -> int:
    """The input-token bound of the first request for a stored ``width × height`` image.

    The size sent is predicted (rounded up) from the stored size and ``long_side``; the
    reservation itself is computed from the JPEG actually encoded.
    """
    scale = min(1.0, long_side / max(width, height))
    request = VLMRequest(
        system=prompt.system,
        prompt=prompt.text,
        schema=prompt.schema,
        image_jpeg=b"",
        max_tokens=max_tokens,
        image_width=max(1, math.ceil(width * scale)),
        image_height=max(1, math.ceil(height * scale)),
    )
    return input_token_bound(provider, model, request, options)


def _run_coroutine(coroutine: Any, on_interrupt: Any = None) -> Any:
    """Run ``coroutine`` to completion, also from inside Jupyter's running event loop.

    There the loop runs in a worker thread; an interrupt (Jupyter's stop button) calls
    ``on_interrupt`` so that no new requests start, and waits for those in flight.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        future = pool.submit(asyncio.run, coroutine)
        try:
            return future.result()
        except BaseException:
            if on_interrupt is not None:
                on_interrupt()
            raise


def rate_with_vlm(
    ws: Workspace,
    images: Any = None,
    attributes: Iterable[str] | None = None,
    provider: str | None = None,
    model: str | None = None,
    sample: Any = None,
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
    codebook: Any = None,
    sample_seed: int | None = None,
    timeout: float = 60.0,
    max_retries: int = 5,
    retry_base_s: float = 0.5,
    long_side: int = 1024,
    provider_options: Mapping[str, Any] | None = None,
) -> VLMReport:
    """Rate images with a VLM under a hard budget; returns a :class:`VLMReport`.

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
    budget_usd
        Hard budget of this run; the workspace budget is the setting ``vlm.budget_usd``.
    dry_run
        Count requests and estimate the cost; send nothing.
    force
        Ask again even when the cache has an answer (the new ratings replace the old ones).
    """
    if repeats < 1 or concurrency < 1:
        raise ConfigError(f"repeats and concurrency must be >= 1 (got {repeats}, {concurrency})")
    started = time.perf_counter()
    provider_name, model_name = resolve(ws, provider, model)
    rater = f"vlm:{provider_name}/{model_name}"
    book = resolve_codebook(ws, codebook)
    prompt = build_prompt(book, None if attributes is None else list(attributes), rationale=rationale)
    max_tokens = max_tokens or DEFAULT_MAX_TOKENS + (RATIONALE_TOKENS if rationale else 0)
    params = {
        "temperature": float(temperature),
        "seed": seed,
        "max_tokens": int(max_tokens),
        "long_side": int(long_side),
    }
    assert book.id is not None
    rows, used_seed = choose_images(
        ws,
        image_rows(ws, images),
        sample,
        sample_seed,
        rater=rater,
        keys=prompt.attributes,
        codebook_id=book.id,
    )
    jobs = [
        Job(
            r["id"],
            r["sha256"],
            r["ext"],
            r["width"],
            r["height"],
            k,
            ledger.cache_key(r["sha256"], provider_name, model_name, prompt.hash, params, k),
        )
        for r in rows
        for k in range(repeats)
    ]
    cached = {} if force else ledger.cached_calls(ws, [j.cache_key for j in jobs])
    pending = [j for j in jobs if j.cache_key not in cached]
    report = VLMReport(
        provider_name,
        model_name,
        rater,
        prompt.hash,
        planned=len(jobs),
        cache_hits=len(jobs) - len(pending),
        dry_run=dry_run,
        sample_seed=used_seed,
    )
    report.image_ids = [r["id"] for r in rows]
    max_costs = []
    try:
        price = ledger.get_price(ws, provider_name, model_name)
    except PriceUnknownError as exc:
        if not dry_run:
            raise
        price, report.price_note = None, str(exc)
    if price is not None:
        bounds: dict[tuple[int, int], int] = {}
        for job in pending:
            size = (job.width, job.height)
            if size not in bounds:
                bounds[size] = planned_input_tokens(
                    provider_name, model_name, prompt, *size, long_side, max_tokens, provider_options
                )
            tokens_in = bounds[size]
            # expected: half the input bound (text runs ~4 bytes a token), ~10 output tokens an attribute
            max_costs.append(
                (price.cost(tokens_in, max_tokens), price.cost(tokens_in // 2, 10 * len(prompt.attributes)))
            )
        report.max_cost_usd = sum(m for m, _ in max_costs)
        report.expected_cost_usd = sum(e for _, e in max_costs)
    if dry_run:
        report.seconds = time.perf_counter() - started
        return report
    assert price is not None
    if ws.get_setting(ledger.KILL_SWITCH_KEY):
        raise KillSwitchError(
            "the VLM kill switch is on (setting vlm.kill_switch); turn it off with "
            "ws.set_setting('vlm.kill_switch', False)"
        )
    parameters = {
        "provider": provider_name,
        "model": model_name,
        "prompt_hash": prompt.hash,
        "prompt_version": prompt.version,
        "codebook_id": book.id,
        "attributes": list(prompt.attributes),
        "repeats": repeats,
        "sample": sample if isinstance(sample, int | str | None) else "custom",
        "sample_seed": used_seed,
        "budget_usd": budget_usd,
        "force": force,
        "concurrency": concurrency,
        **params,
    }
    close_stale_runs(ws.engine, kind="vlm")
    ledger.release_stale(ws)
    ledger.ensure_lock_row(ws)
    run_id = start_run(ws.engine, "vlm", parameters, ws.user, n_total=len(jobs))
    report.run_id = run_id
    options = dict(provider_options or {})
    options.setdefault("timeout", timeout)
    if provider_name == "stub":
        options.pop("timeout")
    client = get_provider(provider_name, model_name, **options)
    from tqdm.auto import tqdm

    bar = tqdm(total=len(jobs), desc=rater, unit="call", disable=not progress, initial=report.cache_hits)
    runner = Runner(
        ws,
        client,
        provider_name=provider_name,
        codebook=book,
        prompt=prompt,
        price=price,
        report=report,
        run_id=run_id,
        params=params,
        budget_usd=budget_usd,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_base_s=retry_base_s,
        long_side=long_side,
        force=force,
        bar=bar,
    )

    async def main() -> None:
        try:
            await runner.run(pending)
        finally:
            await client.aclose()

    status = None
    try:
        _run_coroutine(main(), on_interrupt=lambda: setattr(report, "stopped", "interrupted by the user"))
    except BaseException:
        status = "interrupted"
        raise
    finally:
        bar.close()
        report.seconds = time.perf_counter() - started
        finish_run(
            ws.engine,
            run_id,
            status=status,
            n_done=report.succeeded + report.cache_hits,
            n_failed=len(report.failed),
            n_skipped=report.skipped,
            error=report.stopped,
            details={
                "requests": report.requests,
                "cache_hits": report.cache_hits,
                "spend_usd": report.spend_usd,
                "seconds": report.seconds,
            },
        )
    return report
