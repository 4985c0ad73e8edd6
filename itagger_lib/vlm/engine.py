"""The VLM rating engine: async, bounded concurrency, retries, cache, budget, ledger.

``rate_with_vlm(ws, ...)`` plans the calls (images × repeats), skips those in the cache,
reserves each request's maximum cost in the ledger before sending it, retries what is
worth retrying (429 with ``Retry-After``, 5xx, timeouts, connection errors: exponential
backoff with jitter), validates each answer against the codebook (one repair attempt), and
writes each call and its ratings in one transaction as it arrives. A killed run resumes on
rerun without paying twice for what it already has.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.codebook import Codebook
from itagger_lib.db.models import Rating, VLMCall, utcnow
from itagger_lib.errors import (
    BudgetExceededError,
    ConfigError,
    KillSwitchError,
    PriceUnknownError,
    ProviderError,
    VLMResponseError,
)
from itagger_lib.imaging import encode_jpeg, load_rgb
from itagger_lib.runs import close_stale_runs, finish_run, record_failures, start_run
from itagger_lib.vlm import ledger
from itagger_lib.vlm.planning import choose_images, image_rows, resolve_codebook
from itagger_lib.vlm.prompts import Prompt, build_prompt, parse_answer, repair_prompt
from itagger_lib.vlm.registry import (
    Provider,
    RetryableError,
    VLMRequest,
    VLMResponse,
    all_secrets,
    get_provider,
    redact,
    resolve,
)
from itagger_lib.vlm.report import VLMReport

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

DEFAULT_MAX_TOKENS = 400
RATIONALE_TOKENS = 300


@dataclass
class Job:
    image_id: int
    sha256: str
    ext: str
    width: int
    height: int
    repeat_index: int
    cache_key: str = ""

    @property
    def label(self) -> str:
        return f"image {self.image_id} ({self.sha256[:12]}) repeat {self.repeat_index}"


# -- running --------------------------------------------------------------------------------


class _Runner:
    def __init__(
        self,
        ws: Workspace,
        provider: Provider,
        *,
        codebook: Codebook,
        prompt: Prompt,
        price: ledger.Price,
        report: VLMReport,
        run_id: int,
        params: dict[str, Any],
        max_cost: float,
        budget_usd: float | None,
        concurrency: int,
        timeout: float,
        max_retries: int,
        retry_base_s: float,
        long_side: int,
        force: bool,
        bar: Any,
    ) -> None:
        self.ws, self.provider, self.codebook, self.prompt, self.price = ws, provider, codebook, prompt, price
        self.report, self.run_id, self.params, self.max_cost = report, run_id, params, max_cost
        self.budget_usd, self.timeout, self.max_retries = budget_usd, timeout, max_retries
        self.retry_base_s, self.long_side, self.force, self.bar = retry_base_s, long_side, force, bar
        self.semaphore = asyncio.Semaphore(concurrency)
        self.in_flight = 0
        self.changed = asyncio.Event()
        self.images: OrderedDict[str, bytes] = OrderedDict()
        self.secrets = all_secrets()

    # the database work runs in threads so the event loop keeps requests moving
    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kwargs)

    def _tick(self) -> None:
        r = self.report
        self.bar.set_postfix(
            req=r.requests, hits=r.cache_hits, fail=len(r.failed), usd=f"{r.spend_usd:.4f}", refresh=False
        )
        self.bar.update(1)

    async def run(self, jobs: list[Job]) -> None:
        await asyncio.gather(*(self._job(job) for job in jobs))

    async def _jpeg(self, job: Job) -> bytes:
        if job.sha256 not in self.images:
            path = self.ws.store.path_for(job.sha256, job.ext)
            rgb = await asyncio.to_thread(
                load_rgb, path, self.long_side, size_hint=max(job.width, job.height)
            )
            self.images[job.sha256] = await asyncio.to_thread(encode_jpeg, rgb)
            while len(self.images) > 64:
                self.images.popitem(last=False)
        return self.images[job.sha256]

    async def _reserve(self, job: Job, amount: float, call_id: int | None = None) -> int | None:
        """Reserve ``amount``; wait for in-flight calls to settle when the budget is tight."""
        call = None
        if call_id is None:
            call = {
                "cache_key": job.cache_key,
                "provider": self.provider.name,
                "model": self.provider.model,
                "prompt_hash": self.prompt.hash,
                "prompt_version": self.prompt.version,
                "image_id": job.image_id,
                "image_sha256": job.sha256,
                "codebook_id": self.codebook.id,
                "parameters": self.params,
                "repeat_index": job.repeat_index,
            }
        while True:
            if self.report.stopped:
                return None
            self.changed.clear()
            try:
                return int(
                    await self._db(
                        ledger.reserve,
                        self.ws,
                        amount,
                        run_id=self.run_id,
                        run_budget=self.budget_usd,
                        call=call,
                        call_id=call_id,
                    )
                )
            except KillSwitchError as exc:
                self.report.stopped = str(exc)
                return None
            except BudgetExceededError as exc:
                if self.in_flight - (call_id is not None) <= 0:
                    self.report.stopped = str(exc)
                    return None
                await self.changed.wait()

    async def _job(self, job: Job) -> None:
        async with self.semaphore:
            if self.report.stopped:
                self.report.skipped += 1
                self._tick()
                return
            call_id = await self._reserve(job, self.max_cost)
            if call_id is None:
                self.report.skipped += 1
                self._tick()
                return
            self.in_flight += 1
            try:
                await self._ask(job, call_id)
            finally:
                self.in_flight -= 1
                self.changed.set()
                self._tick()

    async def _send(self, job: Job, call_id: int, request: VLMRequest, charged: list[float]) -> VLMResponse:
        for attempt in range(self.max_retries + 1):
            self.report.requests += 1
            try:
                return await asyncio.wait_for(self.provider.complete(request), timeout=self.timeout + 5)
            except (RetryableError, TimeoutError) as exc:
                error = exc if isinstance(exc, RetryableError) else RetryableError("timed out", timeout=True)
                if attempt == self.max_retries:
                    raise error from None
                if error.timeout:
                    # A request that timed out may still be billed: keep its reservation as cost,
                    # and reserve again before asking once more.
                    charged.append(self.max_cost)
                    if await self._reserve(job, self.max_cost, call_id) is None:
                        raise error from None
                if error.retry_after is not None:
                    delay = error.retry_after
                else:
                    cap = min(30.0, self.retry_base_s * 2**attempt)
                    delay = cap / 2 + random.uniform(0, cap / 2)
                await asyncio.sleep(min(delay, 120.0))
        raise AssertionError("unreachable")

    async def _ask(self, job: Job, call_id: int) -> None:
        started = time.perf_counter()
        jpeg = await self._jpeg(job)
        request = VLMRequest(
            system=self.prompt.system,
            prompt=self.prompt.text,
            schema=self.prompt.schema,
            image_jpeg=jpeg,
            temperature=self.params["temperature"],
            seed=self.params["seed"],
            max_tokens=self.params["max_tokens"],
            timeout=self.timeout,
            repeat_index=job.repeat_index,
        )
        tokens = [0, 0]
        raws: list[str] = []
        charged: list[float] = []
        attempts = 0
        outcome: dict[str, Any] = {}
        for repair in (False, True):
            try:
                response = await self._send(job, call_id, request, charged)
            except (RetryableError, ProviderError) as exc:
                outcome = {"status": "failed", "error": str(exc)}
                break
            attempts += 1
            tokens[0] += response.input_tokens
            tokens[1] += response.output_tokens
            raws.append(response.raw)
            if response.refusal:
                outcome = {"status": "refused", "error": f"the model refused: {response.refusal}"}
                break
            try:
                values, rationale = parse_answer(response.text, self.codebook, self.prompt.attributes)
            except VLMResponseError as exc:
                outcome = {
                    "status": "failed",
                    "error": f"invalid answer{' after repair' if repair else ''}: {exc}",
                }
                if repair or await self._reserve(job, self.max_cost, call_id) is None:
                    break
                request = replace(request, prompt=repair_prompt(self.prompt, response.text, [str(exc)]))
                continue
            outcome = {"status": "ok", "values": values, "rationale": rationale}
            break
        cost = self.price.cost(*tokens) + sum(charged)
        self.report.spend_usd += cost
        if outcome["status"] == "ok":
            self.report.succeeded += 1
        else:
            self.report.failed.append((job.label, redact(outcome["error"], *self.secrets) or ""))
        await self._db(
            self._finish,
            job,
            call_id,
            outcome,
            tokens,
            cost,
            raws,
            attempts,
            int((time.perf_counter() - started) * 1000),
        )

    def _finish(
        self,
        job: Job,
        call_id: int,
        outcome: dict[str, Any],
        tokens: list[int],
        cost: float,
        raws: list[str],
        attempts: int,
        latency_ms: int,
    ) -> None:
        raw = raws[0] if len(raws) == 1 else ("[" + ",".join(raws) + "]" if raws else None)
        with self.ws.engine.begin() as connection:
            connection.execute(
                sa.update(VLMCall)
                .where(VLMCall.id == call_id)
                .values(
                    status=outcome["status"],
                    input_tokens=tokens[0],
                    output_tokens=tokens[1],
                    cost_usd=cost,
                    latency_ms=latency_ms,
                    attempts=attempts,
                    error=redact(outcome.get("error"), *self.secrets),
                    raw_response=redact(raw, *self.secrets),
                    rationale=redact(outcome.get("rationale"), *self.secrets),
                    finished_at=utcnow(),
                )
            )
            if outcome["status"] != "ok":
                record_failures(
                    connection,
                    self.run_id,
                    [(job.label, job.image_id, redact(outcome["error"], *self.secrets) or "")],
                )
                return
            rater = f"vlm:{self.provider.name}/{self.provider.model}"
            if self.force:
                connection.execute(
                    sa.delete(Rating).where(
                        Rating.image_id == job.image_id,
                        Rating.rater == rater,
                        Rating.repeat_index == job.repeat_index,
                        Rating.codebook_id == self.codebook.id,
                        Rating.attribute.in_(list(outcome["values"])),
                    )
                )
            now = utcnow()
            rows = []
            for key, value in outcome["values"].items():
                number, text = self.codebook.attribute(key).to_columns(value)
                rows.append(
                    {
                        "image_id": job.image_id,
                        "attribute": key,
                        "codebook_id": self.codebook.id,
                        "rater": rater,
                        "source": "vlm",
                        "value": number,
                        "value_text": text,
                        "mode": "blind",
                        "repeat_index": job.repeat_index,
                        "run_id": self.run_id,
                        "vlm_call_id": call_id,
                        "rated_at": now,
                    }
                )
            connection.execute(sa.insert(Rating), rows)


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
        for job in pending:
            scale = min(1.0, long_side / max(job.width, job.height))
            tokens_in = ledger.estimate_input_tokens(
                len(prompt.text) + len(prompt.system) + len(str(prompt.schema)),
                max(1, round(job.width * scale)),
                max(1, round(job.height * scale)),
            )
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
    per_call = max((m for m, _ in max_costs), default=0.0)
    runner = _Runner(
        ws,
        client,
        codebook=book,
        prompt=prompt,
        price=price,
        report=report,
        run_id=run_id,
        params=params,
        max_cost=per_call,
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
