"""Executing a VLM run: the run record, the provider client, the dispatcher, the final counts.

:func:`execute` takes a :class:`~itagger_lib.vlm.plan.RatingPlan` and sends its pending
calls under the run's budget: it refuses to start without a price or with the kill switch
on, closes what killed runs left open, records the run, and hands the calls to the
:class:`~itagger_lib.vlm.dispatch.Dispatcher` (async, bounded concurrency, retries, cache,
ledger), from plain Python or from inside Jupyter's running event loop. A killed run
resumes on rerun without paying twice for what it already has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from itagger_lib.errors import KillSwitchError, PriceUnknownError, ProviderSetupError, remedy
from itagger_lib.runs import close_stale_runs, finish_run, start_run
from itagger_lib.stored_settings import get_setting
from itagger_lib.vlm import ledger
from itagger_lib.vlm.dispatch import Dispatcher
from itagger_lib.vlm.plan import check_counts
from itagger_lib.vlm.registry import get_provider

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.vlm.plan import RatingPlan
    from itagger_lib.vlm.report import VLMReport

__all__ = ["check_can_spend", "execute", "run_coroutine", "run_parameters"]

T = TypeVar("T")


def run_coroutine(coroutine: Coroutine[Any, Any, T], on_interrupt: Callable[[], object] | None = None) -> T:
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


def run_parameters(plan: RatingPlan, budget_usd: float | None, concurrency: int) -> dict[str, Any]:
    """What the run records as its parameters (a batch collector rebuilds the prompt from
    them: codebook, attributes, rationale)."""
    return {
        "mode": plan.mode,
        "rationale": plan.rationale,
        "provider": plan.provider,
        "model": plan.model,
        "prompt_hash": plan.prompt.hash,
        "prompt_version": plan.prompt.version,
        "codebook_id": plan.codebook.id,
        "attributes": list(plan.prompt.attributes),
        "repeats": plan.repeats,
        "sample": plan.sample,
        "sample_seed": plan.sample_seed,
        "budget_usd": budget_usd,
        "force": plan.force,
        "concurrency": concurrency,
        "purpose": plan.purpose,
        **plan.params,
    }


def execute(
    ctx: Context,
    plan: RatingPlan,
    *,
    budget_usd: float | None = None,
    concurrency: int = 8,
    timeout: float = 60.0,
    max_retries: int = 5,
    retry_base_s: float = 0.5,
    progress: bool = True,
) -> VLMReport:
    """Send ``plan``'s pending calls as one run; returns its :class:`VLMReport`.

    Parameters
    ----------
    budget_usd
        Hard budget of this run; the workspace budget is the setting ``vlm.budget_usd``.
    concurrency
        Requests in flight at once.
    timeout
        Seconds per request; a request that times out may have been billed and is charged
        at its reservation.
    max_retries, retry_base_s
        Retries of 429, 5xx, timeouts and dropped connections: exponential backoff from
        ``retry_base_s`` with jitter, or the wait the provider asks for.
    progress
        Show a progress bar.

    Raises
    ------
    PriceUnknownError
        The model has no price, so the budget cannot be kept.
    KillSwitchError
        The workspace kill switch (setting ``vlm.kill_switch``) is on.
    ProviderSetupError
        The first requests could not connect or were refused (401, 403, 404): the run
        stopped at once, without retries; the message says what to check.
    """
    check_counts(concurrency=concurrency)
    check_can_spend(ctx, plan)
    started = time.perf_counter()
    report = plan.report(dry_run=False)
    close_stale_runs(ctx.engine, kind="vlm")
    ledger.release_stale(ctx)
    ledger.ensure_lock_row(ctx)
    run_id = start_run(
        ctx.engine, "vlm", run_parameters(plan, budget_usd, concurrency), ctx.user, n_total=len(plan.jobs)
    )
    report.run_id = run_id
    options = dict(plan.provider_options)
    options.setdefault("timeout", timeout)
    if plan.provider == "stub":
        options.pop("timeout")
    client = get_provider(plan.provider, plan.model, **options)
    from tqdm.auto import tqdm

    bar = tqdm(
        total=len(plan.jobs), desc=plan.rater, unit="call", disable=not progress, initial=report.cache_hits
    )
    dispatcher = Dispatcher(
        ctx,
        client,
        plan,
        report,
        run_id,
        budget_usd=budget_usd,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        retry_base_s=retry_base_s,
        bar=bar,
    )

    async def main() -> None:
        try:
            await dispatcher.run(plan.pending)
        finally:
            await client.aclose()

    status = None
    try:
        run_coroutine(main(), on_interrupt=lambda: setattr(report, "stopped", "interrupted by the user"))
        if dispatcher.setup_error is not None:
            status = "failed"
    except BaseException:
        status = "interrupted"
        raise
    finally:
        bar.close()
        report.seconds = plan.seconds + time.perf_counter() - started
        finish_run(
            ctx.engine,
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
    if dispatcher.setup_error is not None:
        raise ProviderSetupError(str(report.stopped), connect=dispatcher.setup_error.connect)
    return report


def check_can_spend(ctx: Context, plan: RatingPlan) -> None:
    """:class:`PriceUnknownError` without a price, :class:`KillSwitchError` with the switch on."""
    if plan.price is None:
        raise PriceUnknownError(plan.price_problem or f"no price for {plan.provider}/{plan.model}")
    if get_setting(ctx.engine, ledger.KILL_SWITCH_KEY):
        raise KillSwitchError(
            "the VLM kill switch is on (setting vlm.kill_switch); turn it off "
            + remedy(
                "with ws.set_setting('vlm.kill_switch', False)",
                "with the Kill switch button of the admin cockpit (00_Admin.ipynb)",
            )
        )
