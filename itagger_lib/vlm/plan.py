"""Planning a VLM run: what will be sent, and at what bound, before anything is sent.

:func:`plan_rating` resolves the provider and model, the codebook and the prompt, chooses
the images (all, a random or stratified sample, the unrated), makes one :class:`Job` per
image × repeat, finds the jobs the cache already answers, and bounds the cost of the rest:
each request's input tokens from the size its image will be sent at
(:mod:`itagger_lib.vlm.tokens`), its output by ``max_tokens``, at the model's price (its
batch price in ``mode="batch"``). The expected cost is estimated without and with the
provider's prompt cache (the codebook prefix read from the cache after the first request).
The :class:`RatingPlan` it returns is all of that; a dry run is its report,
:func:`itagger_lib.vlm.execute.execute` sends it one request at a time and
:func:`itagger_lib.vlm.batches.submit` as provider batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import sqlalchemy as sa

from itagger_lib.codebook import Codebook, resolve_codebook
from itagger_lib.db.models import Rating
from itagger_lib.errors import ArgumentError, PriceUnknownError
from itagger_lib.images import rows as image_rows
from itagger_lib.images import select as select_images
from itagger_lib.vlm import ledger, sampling
from itagger_lib.vlm.base import VLMRequest
from itagger_lib.vlm.estimate import estimate_costs
from itagger_lib.vlm.prices import Price, get_price, stale_notes
from itagger_lib.vlm.primary import rater_name
from itagger_lib.vlm.prompts import Prompt, build_prompt
from itagger_lib.vlm.registry import image_tokens, input_token_bound, resolve
from itagger_lib.vlm.report import VLMReport

if TYPE_CHECKING:
    from itagger_lib._types import ImageSelection
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MODES",
    "RATIONALE_TOKENS",
    "Job",
    "RatingPlan",
    "SampleSpec",
    "check_counts",
    "choose_images",
    "plan_rating",
    "planned_input_tokens",
    "request_for",
    "sent_size",
]

DEFAULT_MAX_TOKENS = 400
RATIONALE_TOKENS = 300
MODES = ("interactive", "batch")

#: Which of the selected images to send: ``None`` or ``"all"``, an integer N (a random
#: sample, its seed recorded), ``"unrated"`` (those this model has not answered for every
#: asked attribute), or ``{"n": N, "by": {image_id: stratum}, "seed": S, "unrated": True}``.
SampleSpec: TypeAlias = "int | str | Mapping[str, Any] | None"


@dataclass
class Job:
    """One call of a run: an image (its stored file and size) and a repeat index."""

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


@dataclass(frozen=True)
class RatingPlan:
    """A VLM run before it is sent: the calls, those the cache answers, and the cost bound.

    ``params`` (temperature, seed, max_tokens, long_side) are part of every call's cache
    key; ``pending`` are the jobs to send (all of them with ``force``), less the
    ``in_flight`` ones waiting in a provider batch, which no run sends twice. Without a price for
    the model, ``price`` is ``None`` and ``price_problem`` says why: a dry run reports it,
    a real run refuses to start. ``price_notes``: a local server priced at 0, a price read
    long ago. ``mode``: ``interactive`` or ``batch`` (the provider's batch API, at its
    prices). ``expected_cached_cost_usd``: the estimate with the prompt cache, ``None``
    when the provider has none or the prefix (``cache_prefix_tokens``) is below its minimum.
    """

    provider: str
    model: str
    codebook: Codebook
    prompt: Prompt
    params: dict[str, Any]
    repeats: int
    sample: int | str | None  # as recorded with the run ("custom" for a mapping)
    sample_seed: int | None
    force: bool
    provider_options: dict[str, Any]
    image_ids: list[int]
    jobs: list[Job]
    pending: list[Job]
    price: Price | None = None
    price_problem: str | None = None
    max_cost_usd: float | None = None
    expected_cost_usd: float | None = None
    seconds: float = 0.0  # spent planning
    mode: str = "interactive"
    rationale: bool = False
    price_notes: tuple[str, ...] = ()
    expected_cached_cost_usd: float | None = None
    cache_prefix_tokens: int = 0
    in_flight: int = 0  # jobs waiting in provider batches: neither cached nor pending
    purpose: str = "rating"  # or "audit" (itagger_lib.vlm.primary): recorded with the run

    @property
    def rater(self) -> str:
        """The rater its ratings are stored under: ``vlm:<provider>/<model>@<prompt version>``."""
        return rater_name(self.provider, self.model, self.prompt.version)

    def call_row(self, job: Job) -> dict[str, Any]:
        """The ``vlm_calls`` values of ``job``'s call before it is sent (its reservation)."""
        return {
            "cache_key": job.cache_key,
            "provider": self.provider,
            "model": self.model,
            "prompt_hash": self.prompt.hash,
            "prompt_version": self.prompt.version,
            "image_id": job.image_id,
            "image_sha256": job.sha256,
            "codebook_id": self.codebook.id,
            "parameters": self.params,
            "repeat_index": job.repeat_index,
        }

    @property
    def cache_hits(self) -> int:
        return len(self.jobs) - len(self.pending) - self.in_flight

    def report(self, *, dry_run: bool) -> VLMReport:
        """A report of this plan, to be filled in by the run (or, ``dry_run``, final)."""
        report = VLMReport(
            self.provider,
            self.model,
            self.rater,
            self.prompt.hash,
            planned=len(self.jobs),
            cache_hits=self.cache_hits,
            dry_run=dry_run,
            sample_seed=self.sample_seed,
            max_cost_usd=self.max_cost_usd,
            expected_cost_usd=self.expected_cost_usd,
            expected_cached_cost_usd=self.expected_cached_cost_usd,
            price_note=self.price_problem,
            notes=list(self.price_notes),
            seconds=self.seconds,
            mode=self.mode,
            in_flight=self.in_flight,
        )
        report.image_ids = list(self.image_ids)
        return report


def check_counts(**counts: int) -> None:
    """:class:`ArgumentError` unless every count (``repeats``, ``concurrency``) is at least 1."""
    if any(value < 1 for value in counts.values()):
        got = ", ".join(str(value) for value in counts.values())
        raise ArgumentError(f"{' and '.join(counts)} must be >= 1 (got {got})")


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
    sent_width, sent_height = sent_size(width, height, long_side)
    request = VLMRequest(
        system=prompt.system,
        prompt=prompt.text,
        schema=prompt.schema,
        image_jpeg=b"",
        max_tokens=max_tokens,
        image_width=sent_width,
        image_height=sent_height,
    )
    return input_token_bound(provider, model, request, options)


def sent_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size (rounded up) a stored ``width × height`` image is sent at."""
    scale = min(1.0, long_side / max(width, height))
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def request_for(
    prompt: Prompt,
    params: Mapping[str, Any],
    jpeg: bytes,
    width: int,
    height: int,
    base64_text: str = "",
    *,
    repeat_index: int = 0,
    timeout: float = 60.0,
) -> VLMRequest:
    """The request asking ``prompt`` about one encoded image, with the run's ``params``."""
    return VLMRequest(
        system=prompt.system,
        prompt=prompt.text,
        schema=prompt.schema,
        image_jpeg=jpeg,
        temperature=params["temperature"],
        seed=params["seed"],
        max_tokens=params["max_tokens"],
        timeout=timeout,
        repeat_index=repeat_index,
        image_width=width,
        image_height=height,
        image_base64=base64_text,
    )


def _unrated(
    ctx: Context, image_ids: list[int], rater: str, keys: tuple[str, ...], codebook_id: int
) -> list[int]:
    with ctx.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Rating.image_id, sa.func.count(sa.distinct(Rating.attribute)))
            .where(Rating.rater == rater, Rating.attribute.in_(keys), Rating.codebook_id == codebook_id)
            .group_by(Rating.image_id)
        ).all()
    complete = {image_id for image_id, n in rows if n >= len(keys)}
    return [i for i in image_ids if i not in complete]


def choose_images(
    ctx: Context,
    rows: list[dict[str, Any]],
    sample: SampleSpec,
    sample_seed: int | None,
    *,
    rater: str,
    keys: tuple[str, ...],
    codebook_id: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Apply ``sample`` (a :data:`SampleSpec`) to image ``rows``; the rows kept and the seed used."""
    spec: dict[str, Any]
    if sample is None or sample == "all":
        spec = {}
    elif sample == "unrated":
        spec = {"unrated": True}
    elif isinstance(sample, int) and not isinstance(sample, bool):
        spec = {"n": sample}
    elif isinstance(sample, Mapping):
        spec = dict(sample)
        unknown = set(spec) - {"n", "by", "seed", "unrated"}
        if unknown:
            raise ArgumentError(f"sample: unknown keys {sorted(unknown)}; use n, by, seed, unrated")
    else:
        raise ArgumentError(
            f"sample={sample!r}: use None, 'all', 'unrated', an integer N, or "
            "{'n': N, 'by': {image_id: stratum}, 'seed': S, 'unrated': True}"
        )
    ids = [r["id"] for r in rows]
    if spec.get("unrated"):
        ids = _unrated(ctx, ids, rater, keys, codebook_id)
    seed = None
    if spec.get("n") is not None:
        seed = spec.get("seed", sample_seed)
        seed = sampling.new_seed() if seed is None else int(seed)
        if spec.get("by") is not None:
            by = spec["by"]
            strata = dict(by.items()) if hasattr(by, "items") else dict(by)
            ids = sampling.stratified_sample(ids, strata, int(spec["n"]), seed)
        else:
            ids = sampling.random_sample(ids, int(spec["n"]), seed)
    chosen = set(ids)
    return [r for r in rows if r["id"] in chosen], seed


def _selected_rows(ctx: Context, images: ImageSelection) -> list[dict[str, Any]]:
    """The selected images' rows, in the order given (every image by id for ``None``)."""
    ids = select_images(ctx.engine, images)
    if ids is None:
        return list(image_rows(ctx.engine))
    by_id = {row["id"]: row for row in image_rows(ctx.engine, ids)}
    return [by_id[i] for i in ids]


def plan_rating(
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
    *,
    rationale: bool = False,
    force: bool = False,
    codebook: CodebookRef = None,
    sample_seed: int | None = None,
    long_side: int = 1024,
    provider_options: Mapping[str, Any] | None = None,
    mode: str = "interactive",
) -> RatingPlan:
    """Plan a VLM run: what to send and at what bound; sends nothing, writes no run.

    The parameters are those of :func:`itagger_lib.vlm.rating.rate_with_vlm` that decide
    what is sent; a missing price is reported in the plan, not raised.
    """
    started = time.perf_counter()
    check_counts(repeats=repeats)
    if mode not in MODES:
        raise ArgumentError(f"mode={mode!r}: use 'interactive' (one request at a time) or 'batch'")
    provider_name, model_name = resolve(ctx, provider, model)
    book = resolve_codebook(ctx, codebook)
    assert book.id is not None
    prompt = build_prompt(book, None if attributes is None else list(attributes), rationale=rationale)
    rater = rater_name(provider_name, model_name, prompt.version)
    max_tokens = max_tokens or DEFAULT_MAX_TOKENS + (RATIONALE_TOKENS if rationale else 0)
    params = {
        "temperature": float(temperature),
        "seed": seed,
        "max_tokens": int(max_tokens),
        "long_side": int(long_side),
    }
    rows, used_seed = choose_images(
        ctx,
        _selected_rows(ctx, images),
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
    cached = {} if force else ledger.cached_calls(ctx, [j.cache_key for j in jobs])
    unanswered = [j for j in jobs if j.cache_key not in cached]
    waiting = ledger.open_keys(ctx, [j.cache_key for j in unanswered])  # in a provider batch
    pending = [j for j in unanswered if j.cache_key not in waiting]
    options = dict(provider_options or {})
    batch = mode == "batch"
    try:
        price: Price | None = get_price(ctx, provider_name, model_name, options)
        problem = None
    except PriceUnknownError as exc:
        price, problem = None, str(exc)
    notes: list[str] = []
    if waiting:
        notes.append(
            f"{len(waiting)} requests are waiting in provider batches and are not sent again: "
            "collect them (ws.vlm_batches()) or cancel them (ws.cancel_vlm_batches())"
        )
    max_cost = expected_cost = expected_cached = None
    prefix = 0
    if price is not None:
        if price.note and price.origin in ("local",):
            notes.append(price.note)
        notes += stale_notes([(f"{provider_name}/{model_name}", price)])
        if batch and not price.has_batch_rates:
            notes.append(
                f"no batch price for {provider_name}/{model_name}: the standard price is used "
                "(set one with `itagger vlm prices set ... --batch-in X --batch-out Y`)"
            )
        sizes: dict[tuple[int, int], tuple[int, int | None]] = {}
        for job in pending:
            size = (job.width, job.height)
            if size not in sizes:
                bound = planned_input_tokens(
                    provider_name, model_name, prompt, *size, long_side, max_tokens, options
                )
                sizes[size] = (bound, image_tokens(provider_name, model_name, *sent_size(*size, long_side)))
        max_cost, expected_cost, expected_cached, prefix = estimate_costs(
            price,
            provider_name,
            prompt,
            [sizes[(job.width, job.height)] for job in pending],
            max_tokens,
            batch=batch,
        )
    return RatingPlan(
        provider=provider_name,
        model=model_name,
        codebook=book,
        prompt=prompt,
        params=params,
        repeats=repeats,
        sample=sample if isinstance(sample, int | str | None) else "custom",
        sample_seed=used_seed,
        force=force,
        provider_options=options,
        image_ids=[r["id"] for r in rows],
        jobs=jobs,
        pending=pending,
        price=price,
        price_problem=problem,
        max_cost_usd=max_cost,
        expected_cost_usd=expected_cost,
        seconds=time.perf_counter() - started,
        mode=mode,
        rationale=rationale,
        price_notes=tuple(notes),
        expected_cached_cost_usd=expected_cached,
        cache_prefix_tokens=prefix,
        in_flight=len(waiting),
    )
