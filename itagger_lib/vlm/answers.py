"""What a VLM answer costs and the rows it becomes, for requests sent one at a time
(:mod:`.dispatch`) and in provider batches (:mod:`.batches`) alike: a request's reservation
(:func:`max_cost`), a response's cost with its cache reads and writes (:func:`response_cost`)
and the ``ratings`` rows of a validated answer (:func:`rating_rows`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from itagger_lib.db.models import utcnow
from itagger_lib.vlm.registry import input_token_bound

if TYPE_CHECKING:
    from itagger_lib.codebook import Codebook
    from itagger_lib.vlm.base import Provider, VLMRequest, VLMResponse
    from itagger_lib.vlm.prices import Price

__all__ = ["max_cost", "rating_rows", "response_cost"]


def max_cost(
    provider: Provider, provider_name: str, price: Price, request: VLMRequest, *, batch: bool = False
) -> float:
    """A request's reservation: its input-token bound (the provider's own, which counts the
    body it will send, else the registry's) and ``max_tokens``, at the dearest input rate."""
    own = getattr(provider, "input_token_bound", None)
    tokens = own(request) if own is not None else input_token_bound(provider_name, provider.model, request)
    return price.bound(tokens, request.max_tokens, batch=batch)


def response_cost(price: Price, response: VLMResponse, *, batch: bool = False) -> float:
    """What ``response``'s usage costs: cache reads and writes at their own rates."""
    return price.cost(
        response.input_tokens,
        response.output_tokens,
        response.cached_input_tokens,
        response.cache_write_tokens,
        batch=batch,
    )


def rating_rows(
    codebook: Codebook,
    rater: str,
    run_id: int | None,
    call_id: int,
    image_id: int,
    repeat_index: int,
    answer: dict[str, Any],
) -> list[dict[str, Any]]:
    """The ``ratings`` rows of a validated ``answer`` of call ``call_id``."""
    now = utcnow()
    rows = []
    for key, value in answer.items():
        number, text = codebook.attribute(key).to_columns(value)
        rows.append(
            {
                "image_id": image_id,
                "attribute": key,
                "codebook_id": codebook.id,
                "rater": rater,
                "source": "vlm",
                "value": number,
                "value_text": text,
                "mode": "blind",
                "repeat_index": repeat_index,
                "run_id": run_id,
                "vlm_call_id": call_id,
                "rated_at": now,
            }
        )
    return rows
