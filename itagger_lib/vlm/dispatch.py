"""Dispatching a VLM run's calls: images, reservations, requests, retries, reconciliation.

Each job (image × repeat index) takes a concurrency slot, gets its image (decoded and
encoded once per image, shared by its repeats; the next image is prepared while this one's
requests run), reserves the request's maximum cost (:mod:`itagger_lib.vlm.tokens`), sends it
with retries, validates the answer (one repair), and queues its ledger row and ratings for
the :class:`~itagger_lib.vlm.writer.LedgerWriter`.

A response whose usage costs more than its reservation breaks the bound the budget rests
on: the call is recorded at its actual cost, no new request is issued in this run, and the
run's failures say why.

A set-up error (:class:`~itagger_lib.errors.ProviderSetupError`: a refused connection, an
unknown host, 401/403/404) before any request of the run was answered stops the run at once,
without backoff: retrying cannot mend a wrong base URL, key or model, and every other request
would fail the same way. :attr:`Dispatcher.setup_error` holds it for the run's one message.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from itagger_lib.db.models import utcnow
from itagger_lib.errors import (
    BudgetExceededError,
    ItaggerError,
    KillSwitchError,
    ProviderError,
    ProviderSetupError,
    RetryableError,
    VLMResponseError,
)
from itagger_lib.imaging import encode_jpeg, load_rgb
from itagger_lib.vlm.answers import max_cost, rating_rows, response_cost
from itagger_lib.vlm.base import Provider, VLMRequest, VLMResponse
from itagger_lib.vlm.plan import Job, RatingPlan
from itagger_lib.vlm.primary import rater_name
from itagger_lib.vlm.prompts import parse_answer, repair_prompt
from itagger_lib.vlm.report import VLMReport
from itagger_lib.vlm.secrets import all_secrets, redact
from itagger_lib.vlm.writer import Finish, LedgerWriter

if TYPE_CHECKING:
    from pathlib import Path

    from tqdm.auto import tqdm

    from itagger_lib.context import Context

__all__ = ["IMAGE_CACHE", "Dispatcher", "EncodedImage", "encode_image"]

IMAGE_CACHE = 32  # encoded images kept (a run visits images in order, repeats together)


@dataclass(frozen=True)
class EncodedImage:
    """The JPEG sent for one image, its size and its base64 text."""

    jpeg: bytes
    width: int
    height: int
    base64: str


def encode_image(path: Path, long_side: int, size_hint: int) -> EncodedImage:
    """The JPEG of the stored image at ``path`` with its long side at most ``long_side``."""
    rgb = load_rgb(path, long_side, size_hint=size_hint)
    jpeg = encode_jpeg(rgb)
    return EncodedImage(jpeg, rgb.shape[1], rgb.shape[0], base64.b64encode(jpeg).decode("ascii"))


class Dispatcher:
    """Sends a plan's pending jobs through ``provider`` for run ``run_id`` (see the module docstring).

    ``report`` is filled in as calls finish; ``bar`` is a tqdm progress bar.
    """

    def __init__(
        self,
        ctx: Context,
        provider: Provider,
        plan: RatingPlan,
        report: VLMReport,
        run_id: int,
        *,
        budget_usd: float | None,
        concurrency: int,
        timeout: float,
        max_retries: int,
        retry_base_s: float,
        bar: tqdm[Any],
    ) -> None:
        assert plan.price is not None
        self.plan = plan
        self.ctx, self.provider, self.report, self.run_id, self.bar = ctx, provider, report, run_id, bar
        self.provider_name, self.codebook, self.prompt, self.price = (
            plan.provider,
            plan.codebook,
            plan.prompt,
            plan.price,
        )
        self.params, self.long_side, self.force = plan.params, int(plan.params["long_side"]), plan.force
        self.budget_usd, self.timeout, self.max_retries = budget_usd, timeout, max_retries
        self.retry_base_s, self.concurrency = retry_base_s, concurrency
        self.in_flight = 0
        self.answered = False  # a request of this run got an answer: the set-up works
        self.setup_error: ProviderSetupError | None = None
        self.images: OrderedDict[str, asyncio.Task[EncodedImage]] = OrderedDict()
        self.next_image: dict[str, Job] = {}
        self.secrets = all_secrets()
        self.rater = rater_name(plan.provider, provider.model, plan.prompt.version)

    def _tick(self) -> None:
        r = self.report
        self.bar.set_postfix(
            req=r.requests, hits=r.cache_hits, fail=len(r.failed), usd=f"{r.spend_usd:.4f}", refresh=False
        )
        self.bar.update(1)

    def stop(self, reason: str) -> None:
        """No new requests from now on (in-flight ones finish); the first reason is kept."""
        self.report.stopped = self.report.stopped or reason

    async def run(self, jobs: list[Job]) -> None:
        self.semaphore = asyncio.Semaphore(self.concurrency)
        self.changed = asyncio.Event()
        for job, following in itertools.pairwise(jobs):
            if following.sha256 != job.sha256:
                self.next_image.setdefault(job.sha256, following)
        self.writer = LedgerWriter(self.ctx, run_id=self.run_id, run_budget=self.budget_usd)
        tasks = [asyncio.ensure_future(self._job(job)) for job in jobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            self.writer.close()

    def _image_task(self, job: Job) -> asyncio.Task[EncodedImage]:
        task = self.images.get(job.sha256)
        if task is None:
            path = self.ctx.store.path_for(job.sha256, job.ext)
            size = max(job.width, job.height)
            task = asyncio.ensure_future(asyncio.to_thread(encode_image, path, self.long_side, size))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved by its jobs
            self.images[job.sha256] = task
            while len(self.images) > IMAGE_CACHE:
                self.images.popitem(last=False)
        return task

    async def _image(self, job: Job) -> EncodedImage:
        task = self._image_task(job)
        following = self.next_image.get(job.sha256)
        if following is not None:
            self._image_task(following)  # decode the next image while this one's requests run
        return await task

    def _request(self, job: Job, image: EncodedImage) -> VLMRequest:
        return VLMRequest(
            system=self.prompt.system,
            prompt=self.prompt.text,
            schema=self.prompt.schema,
            image_jpeg=image.jpeg,
            temperature=self.params["temperature"],
            seed=self.params["seed"],
            max_tokens=self.params["max_tokens"],
            timeout=self.timeout,
            repeat_index=job.repeat_index,
            image_width=image.width,
            image_height=image.height,
            image_base64=image.base64,
        )

    def _max_cost(self, request: VLMRequest) -> float:
        """The request's reservation: the input-token bound and ``max_tokens`` at the prices."""
        return max_cost(self.provider, self.provider_name, self.price, request)

    async def _reserve(self, job: Job, amount: float, call_id: int | None = None) -> int | None:
        """Reserve ``amount``; wait for in-flight calls to settle when the budget is tight."""
        call = None
        if call_id is None:
            call = self.plan.call_row(job)
        while True:
            if self.report.stopped:
                return None
            self.changed.clear()
            try:
                reserved = await self.writer.reserve(amount, call=call, call_id=call_id)
            except KillSwitchError as exc:
                self.stop(str(exc))
                return None
            except BudgetExceededError as exc:
                if self.in_flight - (call_id is not None) <= 0:
                    self.stop(str(exc))
                    return None
                await self.changed.wait()
                continue
            if self.report.stopped and call_id is None:
                self.writer.release(reserved)  # stopped while reserving: this one is never sent
                return None
            return reserved

    async def _job(self, job: Job) -> None:
        async with self.semaphore:
            if self.report.stopped:
                self.report.skipped += 1
                self._tick()
                return
            try:
                request = self._request(job, await self._image(job))
            except ItaggerError as exc:
                reason = redact(f"the image could not be prepared: {exc}", *self.secrets) or ""
                self.report.failed.append((job.label, reason))
                self.writer.finish(Finish(None, failures=[(job.label, job.image_id, reason)]))
                self._tick()
                return
            amount = self._max_cost(request)
            call_id = await self._reserve(job, amount)
            if call_id is None:
                self.report.skipped += 1
                self._tick()
                return
            self.in_flight += 1
            try:
                await self._ask(job, call_id, request, amount)
            finally:
                self.in_flight -= 1
                self.changed.set()
                self._tick()

    async def _send(
        self, job: Job, call_id: int, request: VLMRequest, amount: float, charged: list[float]
    ) -> VLMResponse:
        for attempt in range(self.max_retries + 1):
            self.report.requests += 1
            try:
                response = await asyncio.wait_for(self.provider.complete(request), timeout=self.timeout + 5)
            except ProviderSetupError as exc:
                if not self.answered:
                    self.setup_error = self.setup_error or exc
                    self.stop(str(self.setup_error))
                    raise
                if not exc.connect:
                    raise
                error = RetryableError(str(exc))  # the server went away mid-run: worth a retry
            except (RetryableError, TimeoutError) as exc:
                error = exc if isinstance(exc, RetryableError) else RetryableError("timed out", timeout=True)
            else:
                self.answered = True
                return response
            if attempt == self.max_retries:
                raise error from None
            if error.timeout:
                # A request that timed out may still be billed: keep its reservation as cost,
                # and reserve again before asking once more.
                charged.append(amount)
                if await self._reserve(job, amount, call_id) is None:
                    raise error from None
            if error.retry_after is not None:
                delay = error.retry_after
            else:
                cap = min(30.0, self.retry_base_s * 2**attempt)
                delay = cap / 2 + random.uniform(0, cap / 2)
            await asyncio.sleep(min(delay, 120.0))
            if self.report.stopped:  # stopped meanwhile: a retry would be a new request
                raise error from None
        raise AssertionError("unreachable")

    def _check_usage(self, job: Job, response: VLMResponse, amount: float) -> str | None:
        """The reason to stop the run when ``response`` cost more than was reserved for it."""
        cost = response_cost(self.price, response)
        if cost <= amount * (1 + 1e-9) + 1e-12:
            return None
        reason = (
            f"{job.label}: the provider reported {response.input_tokens} input and "
            f"{response.output_tokens} output tokens (${cost:.6f}), above the ${amount:.6f} reserved "
            f"for the request (max_tokens {self.params['max_tokens']}); the reservation bound does not "
            "hold for this provider/model, so no new requests were sent in this run — check its "
            "price in vlm_prices and its image-token formula (itagger_lib.vlm.tokens)"
        )
        self.stop(reason)
        return reason

    async def _ask(self, job: Job, call_id: int, request: VLMRequest, amount: float) -> None:
        started = time.perf_counter()
        tokens = [0, 0, 0, 0]  # input, output, cache reads, cache writes
        raws: list[str] = []
        charged: list[float] = []
        attempts = 0
        overrun = None
        outcome: dict[str, Any] = {}
        for repair in (False, True):
            try:
                response = await self._send(job, call_id, request, amount, charged)
            except (RetryableError, ProviderError) as exc:
                # a set-up error is the run's one message, not a failure of each call
                setup = isinstance(exc, ProviderSetupError) and self.setup_error is not None
                outcome = {"status": "failed", "error": str(exc), "setup": setup}
                break
            attempts += 1
            tokens[0] += response.input_tokens
            tokens[1] += response.output_tokens
            tokens[2] += response.cached_input_tokens
            tokens[3] += response.cache_write_tokens
            raws.append(response.raw)
            if not response.usage_reported:
                charged.append(amount)  # no usage to bill by: the reservation is the cost
            overrun = self._check_usage(job, response, amount) or overrun
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
                if repair:
                    break
                request = replace(request, prompt=repair_prompt(self.prompt, response.text, [str(exc)]))
                amount = self._max_cost(request)
                if await self._reserve(job, amount, call_id) is None:
                    break
                continue
            outcome = {"status": "ok", "values": values, "rationale": rationale}
            break
        cost = self.price.cost(*tokens) + sum(charged)
        self.report.spend_usd += cost
        error = redact(outcome.get("error"), *self.secrets)
        failures: list[tuple[str, int | None, str]] = []
        if outcome["status"] == "ok":
            self.report.succeeded += 1
        elif not outcome.get("setup"):
            self.report.failed.append((job.label, error or ""))
            failures.append((job.label, job.image_id, error or ""))
        if overrun is not None:
            self.report.failed.append((job.label, overrun))
            failures.append((job.label, job.image_id, overrun))
        raw = raws[0] if len(raws) == 1 else ("[" + ",".join(raws) + "]" if raws else None)
        values = {
            "status": outcome["status"],
            "input_tokens": tokens[0],
            "output_tokens": tokens[1],
            "cached_input_tokens": tokens[2],
            "cache_write_tokens": tokens[3],
            "cost_usd": cost,
            "latency_ms": int((time.perf_counter() - started) * 1000),
            "attempts": attempts,
            "error": error,
            "raw_response": redact(raw, *self.secrets),
            "rationale": redact(outcome.get("rationale"), *self.secrets),
            "finished_at": utcnow(),
        }
        self.writer.finish(
            Finish(
                call_id,
                values,
                ratings=self._ratings(job, call_id, outcome.get("values") or {}),
                failures=failures,
                replace=self._replaced(job) if self.force else None,
            )
        )

    def _replaced(self, job: Job) -> dict[str, Any]:
        return {
            "image_id": job.image_id,
            "rater": self.rater,
            "repeat_index": job.repeat_index,
            "codebook_id": self.codebook.id,
        }

    def _ratings(self, job: Job, call_id: int, answer: dict[str, Any]) -> list[dict[str, Any]]:
        return rating_rows(
            self.codebook, self.rater, self.run_id, call_id, job.image_id, job.repeat_index, answer
        )
