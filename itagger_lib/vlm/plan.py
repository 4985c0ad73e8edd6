"""Planning a VLM run: what will be sent, and at what bound, before anything is sent.

:func:`plan_rating` resolves the provider and model, the codebook and the prompt, chooses
the images (all, a random or stratified sample, the unrated), makes one :class:`Job` per
image × repeat, finds the jobs the cache already answers, and bounds the cost of the rest:
each request's input tokens from the size its image will be sent at
(:mod:`itagger_lib.vlm.tokens`), its output by ``max_tokens``, at the model's price. The
:class:`RatingPlan` it returns is all of that; a dry run is its report, and
:func:`itagger_lib.vlm.execute.execute` sends it.
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
from itagger_lib.vlm.primary import rater_name
from itagger_lib.vlm.prompts import Prompt, build_prompt
from itagger_lib.vlm.registry import input_token_bound, resolve
from itagger_lib.vlm.report import VLMReport

if TYPE_CHECKING:
    from itagger_lib._types import ImageSelection
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "RATIONALE_TOKENS",
    "Job",
    "RatingPlan",
    "SampleSpec",
    "check_counts",
    "choose_images",
    "plan_rating",
    "planned_input_tokens",
]

DEFAULT_MAX_TOKENS = 400
RATIONALE_TOKENS = 300

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
    key; ``pending`` are the jobs to send (all of them with ``force``). Without a price for
    the model, ``price`` is ``None`` and ``price_problem`` says why: a dry run reports it,
    a real run refuses to start.
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
    price: ledger.Price | None = None
    price_problem: str | None = None
    max_cost_usd: float | None = None
    expected_cost_usd: float | None = None
    seconds: float = 0.0  # spent planning
    purpose: str = "rating"  # or "audit" (itagger_lib.vlm.primary): recorded with the run

    @property
    def rater(self) -> str:
        """The rater its ratings are stored under: ``vlm:<provider>/<model>@<prompt version>``."""
        return rater_name(self.provider, self.model, self.prompt.version)

    @property
    def cache_hits(self) -> int:
        return len(self.jobs) - len(self.pending)

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
            price_note=self.price_problem,
            seconds=self.seconds,
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
) -> RatingPlan:
    """Plan a VLM run: what to send and at what bound; sends nothing, writes no run.

    The parameters are those of :func:`itagger_lib.vlm.rating.rate_with_vlm` that decide
    what is sent; a missing price is reported in the plan, not raised.
    """
    started = time.perf_counter()
    check_counts(repeats=repeats)
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
    pending = [j for j in jobs if j.cache_key not in cached]
    options = dict(provider_options or {})
    try:
        price: ledger.Price | None = ledger.get_price(ctx, provider_name, model_name)
        problem = None
    except PriceUnknownError as exc:
        price, problem = None, str(exc)
    max_cost = expected_cost = None
    if price is not None:
        bounds: dict[tuple[int, int], int] = {}
        max_cost = expected_cost = 0.0
        for job in pending:
            size = (job.width, job.height)
            if size not in bounds:
                bounds[size] = planned_input_tokens(
                    provider_name, model_name, prompt, *size, long_side, max_tokens, options
                )
            tokens_in = bounds[size]
            max_cost += price.cost(tokens_in, max_tokens)
            # expected: half the input bound (text runs ~4 bytes a token), ~10 output tokens an attribute
            expected_cost += price.cost(tokens_in // 2, 10 * len(prompt.attributes))
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
    )
