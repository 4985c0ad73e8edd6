"""A VLM as a rater of pairwise and best–worst studies: cached, budgeted, in the ledger.

The VLM is a rater like a person (``vlm:<provider>/<model>@cmp-2``): it gets its own
balanced schedule from the study (:mod:`.queue`) and its judgements are
``comparison_choices`` with ``source = 'vlm'``, the run and the ledger call they came from.
Each trial is one request through the provider registry (:mod:`itagger_lib.vlm.registry`)
and a JSON schema asking for the number chosen (pairwise; 0 for "no difference" where the
study allows ties) or the best and the worst number. By default (``images="separate"``,
rater version ``cmp-2``) the trial's images go as separate images of one user message,
each after the caption "Image k:", as a person sees them: each image at full resolution of
``long_side``, billed by the provider's own image formula. ``images="composite"``
(``cmp-1``) sends them as one image instead, side by side (a grid for 4–6) with the numbers
drawn above them: for a server that accepts one image per message (several small local
models do). The two are different raters: their judgements never mix.

Like Likert VLM ratings: the price must be known (``PriceUnknownError`` otherwise); every
request is reserved in the ledger at its maximum cost under the run budget
(``budget_usd``) and the workspace budget (``vlm.budget_usd``), refused under the kill
switch, and settled at the cost of its reported usage; a request whose cache key (the
images in order, provider, model, prompt and parameters) already has a successful call is
not sent again: its stored judgement is reused. Retryable errors are retried
(``max_retries``); an answer outside the schema (a number not shown, best = worst) is a
failure of the run, recorded with the trial, and the trial stays open for the next run.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from itagger_lib.comparisons.queue import comparative_study, next_trial, rater_trials, record_choice
from itagger_lib.db.models import ComparisonChoice, Image, VLMCall, utcnow
from itagger_lib.errors import (
    ArgumentError,
    BudgetExceededError,
    ItaggerError,
    KillSwitchError,
    RetryableError,
)
from itagger_lib.imaging import encode_jpeg, load_rgb
from itagger_lib.runs import finish_run, hash_parameters, record_failures, start_run
from itagger_lib.vlm import ledger
from itagger_lib.vlm.answers import max_cost, response_cost
from itagger_lib.vlm.base import VLMRequest
from itagger_lib.vlm.execute import run_coroutine
from itagger_lib.vlm.prices import get_price
from itagger_lib.vlm.primary import rater_name
from itagger_lib.vlm.registry import get_provider, resolve
from itagger_lib.vlm.secrets import all_secrets, redact

if TYPE_CHECKING:
    from itagger_lib.comparisons.queue import Trial
    from itagger_lib.context import Context
    from itagger_lib.ratings.studies import StudyInfo, StudyRef

__all__ = ["PROMPT_VERSION", "PROMPT_VERSIONS", "VLMJudgeReport", "composite_jpeg", "judge_with_vlm"]

#: The prompt version of each way of showing a trial's images (part of the rater's name).
PROMPT_VERSIONS = {"separate": "cmp-2", "composite": "cmp-1"}
PROMPT_VERSION = PROMPT_VERSIONS["separate"]
SYSTEMS = {
    "separate": (
        "You judge photographs of places for a perception study. You receive several photographs, "
        "each after its number. Answer only with the JSON requested."
    ),
    "composite": (
        "You judge photographs of places for a perception study. The image you receive shows "
        "several photographs side by side, each under its number. Answer only with the JSON requested."
    ),
}
SYSTEM = SYSTEMS["separate"]
LABEL_PX = 40


@dataclass
class VLMJudgeReport:
    """What :func:`judge_with_vlm` did."""

    run_id: int
    rater: str
    judged: int = 0
    cache_hits: int = 0
    requests: int = 0
    spend_usd: float = 0.0
    failed: list[tuple[int, str]] = field(default_factory=list)
    stopped: str | None = None

    def __str__(self) -> str:
        text = (
            f"{self.rater}: {self.judged} trial(s) judged ({self.cache_hits} from the cache), "
            f"{self.requests} request(s), ${self.spend_usd:.4f}"
        )
        if self.failed:
            text += f", {len(self.failed)} failed"
        return text + (f"; stopped: {self.stopped}" if self.stopped else "")


def composite_jpeg(paths: list[Any], sizes: list[int], long_side: int) -> tuple[bytes, int, int]:
    """The images side by side (2–3 per row), each scaled to ``long_side`` and numbered 1…k
    in a white band above it; JPEG bytes, width and height."""
    tiles = [load_rgb(p, long_side, size_hint=s) for p, s in zip(paths, sizes, strict=True)]
    k = len(tiles)
    columns = k if k <= 3 else (2 if k == 4 else 3)
    rows = -(-k // columns)
    cell_w = max(t.shape[1] for t in tiles)
    cell_h = max(t.shape[0] for t in tiles) + LABEL_PX
    gap = 12
    canvas = PILImage.new(
        "RGB", (columns * cell_w + (columns - 1) * gap, rows * cell_h + (rows - 1) * gap), "white"
    )
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=LABEL_PX - 8)
    for number, tile in enumerate(tiles):
        x = (number % columns) * (cell_w + gap)
        y = (number // columns) * (cell_h + gap)
        draw.text((x + 8, y + 4), str(number + 1), fill="black", font=font)
        canvas.paste(PILImage.fromarray(tile), (x + (cell_w - tile.shape[1]) // 2, y + LABEL_PX))
    return encode_jpeg(np.asarray(canvas)), canvas.width, canvas.height


def _prompt(info: StudyInfo, size: int, images: str = "separate") -> tuple[str, dict[str, Any]]:
    question = str(info.design.get("prompt", ""))
    numbers = list(range(1, size + 1))
    if info.design["type"] == "pairwise":
        tie = info.design.get("ties")
        shown = (
            "You see two photographs, Image 1 and Image 2."
            if images == "separate"
            else "The image shows two photographs: 1 on the left, 2 on the right."
        )
        text = (
            f"{shown} {question} "
            f"Answer with choice = 1 or 2{' (0 if there is no difference)' if tie else ''}."
        )
        schema = {"choice": {"type": "integer", "enum": ([0] if tie else []) + numbers}}
    else:
        shown = (
            f"You see {size} photographs, Image 1 to Image {size}."
            if images == "separate"
            else f"The image shows {size} photographs numbered 1 to {size}."
        )
        text = (
            f"{shown} {question} "
            "Answer with best = the number with the most and worst = the number with the least "
            "(two different numbers)."
        )
        schema = {"best": {"type": "integer", "enum": numbers}, "worst": {"type": "integer", "enum": numbers}}
    return text, {
        "type": "object",
        "properties": schema,
        "required": list(schema),
        "additionalProperties": False,
    }


def _parse(info: StudyInfo, trial: Trial, text: str | None) -> tuple[int | None, int | None, bool]:
    """``(best image, worst image, tie)`` from the model's JSON; :class:`ValueError` if invalid."""
    answer = json.loads(text or "")
    if info.design["type"] == "pairwise":
        choice = int(answer["choice"])
        if choice == 0 and info.design.get("ties"):
            return None, None, True
        if choice not in (1, 2):
            raise ValueError(f"choice {choice!r} is not 1 or 2")
        return trial.items[choice - 1], trial.items[2 - choice], False
    best, worst = int(answer["best"]), int(answer["worst"])
    if not (1 <= best <= len(trial.items) and 1 <= worst <= len(trial.items)) or best == worst:
        raise ValueError(
            f"best {best!r} and worst {worst!r} must be two different numbers 1–{len(trial.items)}"
        )
    return trial.items[best - 1], trial.items[worst - 1], False


def judge_with_vlm(
    ctx: Context,
    study: StudyRef = None,
    provider: str | None = None,
    model: str | None = None,
    budget_usd: float | None = None,
    limit: int | None = None,
    long_side: int = 512,
    max_retries: int = 2,
    provider_options: dict[str, Any] | None = None,
    images: str = "separate",
) -> VLMJudgeReport:
    """Let a VLM judge its schedule of a pairwise or best–worst study; see
    :meth:`itagger_lib.workspace.Workspace.judge_with_vlm`."""
    if images not in PROMPT_VERSIONS:
        raise ArgumentError(f"images={images!r}: use 'separate' (one image each) or 'composite' (one image)")
    info = comparative_study(ctx, study)
    provider, model = resolve(ctx, provider, model)
    options = dict(provider_options or {})
    price = get_price(ctx, provider, model, options)
    client = get_provider(provider, model, **options)
    rater = rater_name(provider, model, PROMPT_VERSIONS[images])
    size = 2 if info.design["type"] == "pairwise" else int(info.design["block_size"])
    text, schema = _prompt(info, size, images)
    system = SYSTEMS[images]
    prompt_hash = hashlib.sha256(json.dumps([system, text, schema], sort_keys=True).encode()).hexdigest()
    params = {"long_side": int(long_side), "temperature": 0.0, "max_tokens": 100, "images": images}
    ledger.ensure_lock_row(ctx)
    ledger.release_stale(ctx)
    next_trial(ctx, info, rater)  # writes the VLM's schedule
    trials = [t for t in rater_trials(ctx, info, rater) if t.status == "open"][: limit if limit else None]
    parameters = {
        "study": info.name,
        "provider": provider,
        "model": model,
        "prompt_hash": prompt_hash,
        **params,
    }
    run_id = start_run(
        ctx.engine, "vlm_comparisons", {**parameters, "budget_usd": budget_usd}, ctx.user, n_total=len(trials)
    )
    report = VLMJudgeReport(run_id=run_id, rater=rater)
    secrets = all_secrets()
    with ctx.engine.connect() as connection:
        rows = {
            int(r.id): r
            for r in connection.execute(
                sa.select(Image.id, Image.sha256, Image.ext, Image.width, Image.height).where(
                    Image.id.in_({i for t in trials for i in t.items})
                )
            )
        }
    context = _Run(
        ctx, info, client, provider, model, price, prompt_hash, params, text, schema, rows, rater,
        run_id, budget_usd, report, max_retries, secrets, int(long_side),
    )  # fmt: skip
    try:
        run_coroutine(_judge_all(context, trials))
    finally:
        with ctx.engine.begin() as connection:
            record_failures(connection, run_id, [(f"trial {t}", None, reason) for t, reason in report.failed])
        status = (
            "succeeded"
            if not report.failed and not report.stopped
            else ("partial" if report.judged else "failed")
        )
        finish_run(
            ctx.engine, run_id, status=status, n_done=report.judged, n_failed=len(report.failed),
            error=report.stopped, details={"rater": rater, "spend_usd": report.spend_usd,
                                           "params_hash": hash_parameters(parameters)},
        )  # fmt: skip
    return report


@dataclass
class _Run:
    """What every trial of one run needs."""

    ctx: Context
    info: StudyInfo
    client: Any
    provider: str
    model: str
    price: Any
    prompt_hash: str
    params: dict[str, Any]
    text: str
    schema: dict[str, Any]
    rows: dict[int, Any]
    rater: str
    run_id: int
    budget_usd: float | None
    report: VLMJudgeReport
    max_retries: int
    secrets: list[str]
    long_side: int


async def _judge_all(run: _Run, trials: list[Trial]) -> None:
    """Judge ``trials`` one after the other on one event loop (the provider's client lives on it)."""
    ctx, report = run.ctx, run.report
    try:
        for trial in trials:
            images = [run.rows[i] for i in trial.items]
            key = ledger.cache_key(
                "+".join(r.sha256 for r in images), run.provider, run.model, run.prompt_hash, run.params, 0
            )
            if _from_cache(ctx, trial, run.rater, key, run.run_id):
                report.cache_hits += 1
                report.judged += 1
                continue
            request = _request(run, images)
            amount = max_cost(run.client, run.provider, run.price, request)
            call = {
                "cache_key": key, "provider": run.provider, "model": run.model,
                "prompt_hash": run.prompt_hash, "prompt_version": PROMPT_VERSIONS[run.params["images"]],
                "image_id": trial.items[0],
                "image_sha256": images[0].sha256, "codebook_id": run.info.codebook_id,
                "parameters": {**run.params, "trial_id": trial.id, "items": list(trial.items)},
                "repeat_index": 0,
            }  # fmt: skip
            try:
                call_id = ledger.reserve(ctx, amount, run_id=run.run_id, run_budget=run.budget_usd, call=call)
            except (BudgetExceededError, KillSwitchError) as error:
                report.stopped = str(error)
                break
            await _ask(run, request, trial, call_id)
    finally:
        await run.client.aclose()


def _request(run: _Run, images: list[Any]) -> VLMRequest:
    """The request of one trial: its images as separate images or as one composite."""
    paths = [run.ctx.store.path_for(r.sha256, r.ext) for r in images]
    sizes = [max(r.width, r.height) for r in images]
    common: dict[str, Any] = {
        "system": SYSTEMS[run.params["images"]], "prompt": run.text, "schema": run.schema,
        "temperature": 0.0, "max_tokens": run.params["max_tokens"],
    }  # fmt: skip
    if run.params["images"] == "composite":
        jpeg, width, height = composite_jpeg(paths, sizes, run.long_side)
        return VLMRequest(image_jpeg=jpeg, image_width=width, image_height=height, **common)
    jpegs = []
    for path, size in zip(paths, sizes, strict=True):
        rgb = load_rgb(path, run.long_side, size_hint=size)
        jpegs.append((encode_jpeg(rgb), (rgb.shape[1], rgb.shape[0])))
    encoded = [(base64.b64encode(jpeg).decode("ascii"), size) for jpeg, size in jpegs]
    (first, (width, height)), more = encoded[0], encoded[1:]
    return VLMRequest(
        image_jpeg=jpegs[0][0], image_base64=first, image_width=width, image_height=height,
        more_images=tuple(data for data, _ in more), more_sizes=tuple(size for _, size in more),
        image_captions=tuple(f"Image {k}:" for k in range(1, len(encoded) + 1)), **common,
    )  # fmt: skip


def _from_cache(ctx: Context, trial: Trial, rater: str, key: str, run_id: int) -> bool:
    """Reuse the judgement of an earlier successful call with the same key (same images in the
    same order, prompt and model); ``False`` when there is none."""
    found = ledger.cached_calls(ctx, [key]).get(key)
    if found is None:
        return False
    with ctx.engine.connect() as connection:
        earlier = connection.execute(
            sa.select(ComparisonChoice.best_image_id, ComparisonChoice.worst_image_id, ComparisonChoice.tie)
            .where(ComparisonChoice.vlm_call_id == found)
            .limit(1)
        ).first()
    if earlier is None:
        return False
    record_choice(
        ctx, trial, earlier.best_image_id, earlier.worst_image_id, tie=bool(earlier.tie), rater=rater,
        source="vlm", run_id=run_id, vlm_call_id=found,
    )  # fmt: skip
    return True


async def _ask(run: _Run, request: VLMRequest, trial: Trial, call_id: int) -> None:
    ctx, report, secrets = run.ctx, run.report, run.secrets
    started = time.monotonic()
    response = None
    error: Exception | None = None
    attempts = 0
    for attempts in range(1, run.max_retries + 2):
        report.requests += 1
        try:
            response = await run.client.complete(request)
            break
        except RetryableError as exc:
            error = exc
            await asyncio.sleep(min(2.0, 0.1 * 2**attempts))
        except ItaggerError as exc:
            error = exc
            break
    values: dict[str, Any] = {"attempts": attempts, "finished_at": utcnow()}
    values["latency_ms"] = round((time.monotonic() - started) * 1000)
    choice: tuple[int | None, int | None, bool] | None = None
    if response is not None:
        cost = (
            response_cost(run.price, response)
            if response.usage_reported
            else request_reservation(ctx, call_id)
        )
        values.update(
            input_tokens=response.input_tokens, output_tokens=response.output_tokens,
            cached_input_tokens=response.cached_input_tokens, cache_write_tokens=response.cache_write_tokens,
            cost_usd=cost, raw_response=redact(response.raw, *secrets),
        )  # fmt: skip
        report.spend_usd += cost
        try:
            if response.refusal:
                raise ValueError(f"the model refused: {response.refusal}")
            choice = _parse(run.info, trial, response.text)
        except (ValueError, KeyError, TypeError) as exc:
            error = exc
    reason = None if choice is not None else redact(f"{type(error).__name__}: {error}", *secrets)
    values.update(status="ok" if choice is not None else "failed", error=reason)
    if response is None:
        values["cost_usd"] = 0.0
    with ctx.engine.begin() as connection:
        connection.execute(sa.update(VLMCall).where(VLMCall.id == call_id).values(**values))
    if choice is None:
        report.failed.append((trial.id, reason or "no answer"))
        return
    best, worst, tie = choice
    record_choice(
        ctx,
        trial,
        best,
        worst,
        tie=tie,
        rater=run.rater,
        source="vlm",
        run_id=run.run_id,
        vlm_call_id=call_id,
    )
    report.judged += 1


def request_reservation(ctx: Context, call_id: int) -> float:
    """The reservation of a call: what a response without usage is charged."""
    with ctx.engine.connect() as connection:
        return float(
            connection.execute(sa.select(VLMCall.reserved_usd).where(VLMCall.id == call_id)).scalar_one()
        )
