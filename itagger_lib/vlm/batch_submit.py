"""Sending a VLM run through a provider's batch API: the same requests, at half the price.

:func:`submit` takes a :class:`~itagger_lib.vlm.plan.RatingPlan` made with
``mode="batch"``. Each pending job's image is encoded (once per image), its request built as
an interactive one is (same prompt, schema, parameters, cache key) and bounded at the batch
prices. Requests are grouped into provider batches within the provider's limits
(``max_requests``, ``max_bytes``); for each group, :func:`send` writes in one transaction a
``vlm_batches`` row (``submitting``) and the calls' reservations under the ledger lock — the
budget checks of interactive requests: what does not fit is skipped and the run stops
there — then sends the batch and records its provider id. A send that fails releases its
reservations (nothing was sent); a set-up error stops the run at once.

A crash between the send and the record leaves a ``submitting`` row; the next refresh
(:mod:`.batches`) finds the batch at the provider, or closes its calls as ``abandoned`` at
their reservation, as an interactive request in flight is. Jobs already waiting in an open
batch are never sent again (the plan leaves them out, :func:`~itagger_lib.vlm.ledger.open_keys`).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.db.models import VLMBatch, VLMCall, utcnow
from itagger_lib.errors import ItaggerError, ProviderError, ProviderSetupError, RetryableError, VLMBatchError
from itagger_lib.runs import close_stale_runs, finish_run, record_failures, start_run, update_run
from itagger_lib.vlm import ledger
from itagger_lib.vlm.answers import max_cost
from itagger_lib.vlm.dispatch import IMAGE_CACHE, EncodedImage, encode_image
from itagger_lib.vlm.execute import check_can_spend, run_coroutine, run_parameters
from itagger_lib.vlm.plan import request_for
from itagger_lib.vlm.registry import get_provider
from itagger_lib.vlm.secrets import all_secrets, redact

if TYPE_CHECKING:
    from itagger_lib.context import Context
    from itagger_lib.store import ImageStore
    from itagger_lib.vlm.base import BatchAPI, BatchState, Provider
    from itagger_lib.vlm.plan import RatingPlan
    from itagger_lib.vlm.report import VLMReport

__all__ = ["OPEN_BATCH", "Images", "Pending", "batch_api", "find_unknown", "send", "submit"]

OPEN_BATCH = ledger.OPEN_BATCH


def batch_api(provider: Provider) -> BatchAPI:
    """The provider's batch API; :class:`VLMBatchError` for a provider without one."""
    make = getattr(provider, "batch_api", None)
    if make is None:
        raise VLMBatchError(
            f"provider {provider.name!r} has no batch API; use mode='interactive' "
            "(batch mode is for 'openai' and 'anthropic')"
        )
    api: BatchAPI = make()
    return api


class Images:
    """Stored images encoded as they are sent, each once while its requests are built."""

    def __init__(self, store: ImageStore, long_side: int) -> None:
        self.store, self.long_side = store, long_side
        self.cache: OrderedDict[str, EncodedImage] = OrderedDict()

    async def get(self, sha256: str, ext: str, size_hint: int) -> EncodedImage:
        image = self.cache.get(sha256)
        if image is None:
            path = self.store.path_for(sha256, ext)
            image = await asyncio.to_thread(encode_image, path, self.long_side, size_hint)
            self.cache[sha256] = image
            while len(self.cache) > IMAGE_CACHE:
                self.cache.popitem(last=False)
        return image


@dataclass
class Pending:
    """One request to batch: its entry, its reservation, and its call (a new row's values,
    or the id of an open call asked again)."""

    custom_id: str
    entry: bytes
    amount: float
    call: dict[str, Any] | None = None
    call_id: int | None = None
    label: str = ""


@dataclass
class Sent:
    """What :func:`send` did: the batch row, requests sent, and why it stopped (if it did)."""

    batch_id: int | None = None
    sent: int = 0
    refused: list[Pending] = field(default_factory=list)
    stopped: str | None = None


async def send(
    ctx: Context,
    api: BatchAPI,
    pending: list[Pending],
    *,
    run_id: int,
    provider: str,
    model: str,
    base_url: str | None,
    run_budget: float | None,
    repair: bool = False,
    max_retries: int = 5,
    retry_base_s: float = 0.5,
) -> Sent:
    """Reserve ``pending`` and send it as one provider batch (see the module docstring)."""
    tag = uuid.uuid4().hex
    result = Sent()
    with ctx.engine.begin() as connection:
        batch_id = int(
            connection.execute(
                sa.insert(VLMBatch)
                .values(
                    run_id=run_id,
                    provider=provider,
                    model=model,
                    base_url=base_url,
                    tag=tag,
                    status="submitting",
                    repair=repair,
                    n_requests=0,
                    n_succeeded=0,
                    n_failed=0,
                    details={},
                    created_at=utcnow(),
                )
                .returning(VLMBatch.id)
            ).scalar_one()
        )
        reservations = [
            ledger.Reservation(
                p.amount, call={**p.call, "batch_id": batch_id} if p.call else None, call_id=p.call_id
            )
            for p in pending
        ]
        ledger.reserve_many(connection, reservations, run_id=run_id, run_budget=run_budget)
        accepted = []
        for item, reservation in zip(pending, reservations, strict=True):
            if isinstance(reservation.result, Exception):
                result.refused.append(item)
                result.stopped = result.stopped or str(reservation.result)
            else:
                item.call_id = int(reservation.result)  # type: ignore[arg-type]
                accepted.append(item)
        if repair and accepted:
            ids = [p.call_id for p in accepted]
            connection.execute(sa.update(VLMCall).where(VLMCall.id.in_(ids)).values(batch_id=batch_id))
        if not accepted:
            connection.execute(sa.delete(VLMBatch).where(VLMBatch.id == batch_id))
            return result
        connection.execute(
            sa.update(VLMBatch).where(VLMBatch.id == batch_id).values(n_requests=len(accepted))
        )
    created = utcnow()
    try:
        state = await _submit(ctx, api, [p.entry for p in accepted], tag, created, max_retries, retry_base_s)
    except (ProviderError, RetryableError) as exc:
        _unsend(
            ctx, batch_id, [p.call_id for p in accepted if p.call_id is not None], str(exc), repair=repair
        )
        if isinstance(exc, ProviderSetupError):
            raise
        result.stopped = f"the batch could not be submitted: {exc}"
        return result
    record_state(ctx, batch_id, state, submitted=True)
    result.batch_id, result.sent = batch_id, len(accepted)
    return result


async def find_unknown(
    ctx: Context, api: BatchAPI, tag: str, created: Any, n_requests: int
) -> BatchState | None:
    """The provider batch submitted with ``tag``: the one candidate of ``api.find`` that no
    row of ``vlm_batches`` records yet, or ``None`` (none, or no way to tell which)."""
    candidates = await api.find(tag, created, n_requests)
    if not candidates:
        return None
    with ctx.engine.connect() as connection:
        known = set(
            connection.execute(
                sa.select(VLMBatch.provider_batch_id).where(
                    VLMBatch.provider_batch_id.in_([c.id for c in candidates])
                )
            ).scalars()
        )
    left = [c for c in candidates if c.id not in known]
    return left[0] if len(left) == 1 else None


async def _submit(
    ctx: Context,
    api: BatchAPI,
    entries: list[bytes],
    tag: str,
    created: Any,
    max_retries: int,
    retry_base_s: float,
) -> BatchState:
    """``api.submit`` with the retries of 429, 5xx and timeouts; before a retry, a batch
    that the failed attempt did create is looked up, so it is not submitted twice."""
    for attempt in range(max_retries + 1):
        try:
            return await api.submit(entries, tag)
        except RetryableError as exc:
            try:
                found = await find_unknown(ctx, api, tag, created, len(entries))
            except (ProviderError, RetryableError):
                found = None
            if found is not None:
                return found
            if attempt == max_retries:
                raise
            cap = min(30.0, retry_base_s * 2**attempt)
            await asyncio.sleep(
                exc.retry_after if exc.retry_after is not None else cap / 2 + random.uniform(0, cap / 2)
            )
    raise AssertionError("unreachable")


def _unsend(ctx: Context, batch_id: int, call_ids: list[int], error: str, *, repair: bool) -> None:
    """A batch that never reached the provider: its new calls are released, its repairs
    failed at what they cost so far; the row says why."""
    with ctx.engine.begin() as connection:
        if repair:
            connection.execute(
                sa.update(VLMCall)
                .where(VLMCall.id.in_(call_ids), VLMCall.status == ledger.OPEN)
                .values(
                    status="failed", error=f"the repair could not be submitted: {error}", finished_at=utcnow()
                )
            )
        else:
            connection.execute(
                sa.delete(VLMCall).where(VLMCall.id.in_(call_ids), VLMCall.status == ledger.OPEN)
            )
        connection.execute(
            sa.update(VLMBatch)
            .where(VLMBatch.id == batch_id)
            .values(status="failed", error=error, n_requests=0)
        )


def record_state(ctx: Context, batch_id: int, state: BatchState, *, submitted: bool = False) -> None:
    """Write what the provider says of batch ``batch_id`` (its id, status, counts, times),
    unless it is no longer open (another process collected it meanwhile)."""
    values: dict[str, Any] = {
        "provider_batch_id": state.id,
        "status": state.status,
        "provider_status": state.provider_status,
        "expires_at": state.expires_at,
        "ended_at": state.ended_at,
        "details": {"counts": state.counts, **{k: v for k, v in state.details.items() if v is not None}},
    }
    if state.error:
        values["error"] = state.error
    if submitted:
        values["submitted_at"] = utcnow()
    with ctx.engine.begin() as connection:
        connection.execute(
            sa.update(VLMBatch)
            .where(VLMBatch.id == batch_id, VLMBatch.status.in_(OPEN_BATCH))
            .values(**values)
        )


def submit(
    ctx: Context,
    plan: RatingPlan,
    *,
    budget_usd: float | None = None,
    concurrency: int = 8,
    timeout: float = 60.0,
    max_retries: int = 5,
    retry_base_s: float = 0.5,
) -> VLMReport:
    """Send ``plan``'s pending jobs, less those already in an open batch, as provider
    batches of a new run (none when there is nothing to send); the run then ``waits``.

    Raises :class:`PriceUnknownError`, :class:`KillSwitchError`,
    :class:`ProviderSetupError` (the first submission could not connect or was refused) and
    :class:`VLMBatchError` (the provider has no batch API).
    """
    check_can_spend(ctx, plan)
    assert plan.price is not None
    started = time.perf_counter()
    report = plan.report(dry_run=False)
    jobs = plan.pending
    if not jobs:
        report.seconds = plan.seconds + time.perf_counter() - started
        return report
    options = {**plan.provider_options, "timeout": timeout}
    provider = get_provider(plan.provider, plan.model, **options)
    api = batch_api(provider)
    close_stale_runs(ctx.engine, kind="vlm")
    ledger.release_stale(ctx)
    ledger.ensure_lock_row(ctx)
    parameters = run_parameters(plan, budget_usd, concurrency)
    run_id = start_run(ctx.engine, "vlm", parameters, ctx.user, n_total=len(plan.jobs))
    report.run_id = run_id
    base_url = getattr(provider, "base_url", None)
    secrets = all_secrets()

    async def main() -> None:
        try:
            await build_and_send()
        finally:
            await provider.aclose()

    async def build_and_send() -> None:
        images = Images(ctx.store, int(plan.params["long_side"]))
        chunk: list[Pending] = []
        size = 0
        failures: list[tuple[str, int | None, str]] = []
        for index, job in enumerate(jobs):
            try:
                image = await images.get(job.sha256, job.ext, max(job.width, job.height))
            except ItaggerError as exc:
                reason = redact(f"the image could not be prepared: {exc}", *secrets) or ""
                report.failed.append((job.label, reason))
                failures.append((job.label, job.image_id, reason))
                continue
            request = request_for(
                plan.prompt,
                plan.params,
                image.jpeg,
                image.width,
                image.height,
                image.base64,
                repeat_index=job.repeat_index,
                timeout=timeout,
            )
            assert plan.price is not None
            amount = max_cost(provider, plan.provider, plan.price, request, batch=True)
            entry = api.entry(job.cache_key, request)
            if chunk and (len(chunk) >= api.max_requests or size + len(entry) + 1 > api.max_bytes):
                if not await flush(chunk):
                    report.skipped += len(jobs) - index
                    break
                chunk, size = [], 0
            chunk.append(Pending(job.cache_key, entry, amount, call=plan.call_row(job), label=job.label))
            size += len(entry) + 1
        else:
            if chunk:
                await flush(chunk)
        if failures:
            with ctx.engine.begin() as connection:
                record_failures(connection, run_id, failures)

    async def flush(chunk: list[Pending]) -> bool:
        sent = await send(
            ctx,
            api,
            chunk,
            run_id=run_id,
            provider=plan.provider,
            model=plan.model,
            base_url=base_url,
            run_budget=budget_usd,
            max_retries=max_retries,
            retry_base_s=retry_base_s,
        )
        if sent.batch_id is not None:
            report.batches.append(sent.batch_id)
        report.submitted += sent.sent
        report.requests += sent.sent
        report.skipped += len(sent.refused) + (len(chunk) - sent.sent - len(sent.refused))
        if sent.stopped:
            report.stopped = report.stopped or sent.stopped
        return sent.stopped is None

    try:
        run_coroutine(main(), on_interrupt=lambda: setattr(report, "stopped", "interrupted by the user"))
    except ProviderSetupError as exc:
        report.stopped = str(exc)
        finish_run(ctx.engine, run_id, status="failed", error=str(exc), n_skipped=len(jobs))
        raise
    except BaseException:
        finish_run(ctx.engine, run_id, status="interrupted", error=report.stopped or "interrupted")
        raise
    report.seconds = plan.seconds + time.perf_counter() - started
    report.in_flight += report.submitted
    details = {"cache_hits": report.cache_hits, "batches": report.batches, "submitted": report.submitted}
    if report.batches:
        update_run(ctx.engine, run_id, status="waiting", n_skipped=report.skipped, error=report.stopped)
        _merge_details(ctx, run_id, details)
    else:
        finish_run(
            ctx.engine,
            run_id,
            n_done=report.cache_hits,
            n_failed=len(report.failed),
            n_skipped=report.skipped,
            error=report.stopped,
            details=details,
        )
    return report


def _merge_details(ctx: Context, run_id: int, details: dict[str, Any]) -> None:
    from itagger_lib.db.models import Run

    with ctx.engine.begin() as connection:
        current = connection.execute(sa.select(Run.details).where(Run.id == run_id)).scalar_one() or {}
        connection.execute(sa.update(Run).where(Run.id == run_id).values(details={**current, **details}))
