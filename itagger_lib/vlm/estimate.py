"""The dry run's expected cost of a plan, without and with the provider's prompt cache.

The bound (:mod:`.tokens`) is what a request may cost at most; this is what it is expected
to cost: the image's tokens by the provider's formula, the text at :data:`BYTES_PER_TOKEN`
bytes a token (what real prompts run at; the bound counts one a byte), about 10 output
tokens an attribute. With the cache, the codebook prefix (system text and schema) is read
from it by every request after the first, which writes it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from itagger_lib.vlm.registry import prompt_cache_min_tokens

if TYPE_CHECKING:
    from itagger_lib.vlm.prices import Price
    from itagger_lib.vlm.prompts import Prompt

__all__ = ["BYTES_PER_TOKEN", "estimate_costs", "prefix_tokens"]

BYTES_PER_TOKEN = 4


def prefix_tokens(prompt: Prompt) -> int:
    """An estimate of the tokens of the cacheable prefix (system text and schema), at
    :data:`BYTES_PER_TOKEN` bytes a token."""
    return len((prompt.system + json.dumps(prompt.schema)).encode()) // BYTES_PER_TOKEN


def estimate_costs(
    price: Price,
    provider: str,
    prompt: Prompt,
    requests: list[tuple[int, int | None]],
    max_tokens: int,
    *,
    batch: bool,
) -> tuple[float, float, float | None, int]:
    """``(bound, expected, expected with the prompt cache, prefix tokens)`` over requests
    given as ``(input-token bound, image tokens or None)``.

    Expected: the image's tokens and the rest of the bound (text bytes and framing) at
    :data:`BYTES_PER_TOKEN` bytes a token (half the bound without an image formula); about
    10 output tokens an attribute. With the cache, every request after the first reads the
    prefix from it (the first writes it), if the prefix reaches the provider's minimum.
    """
    output = 10 * len(prompt.attributes)
    prefix = prefix_tokens(prompt)
    minimum = prompt_cache_min_tokens(provider)
    caches = minimum is not None and prefix >= minimum
    bound = expected = cached = 0.0
    for index, (tokens_in, image) in enumerate(requests):
        bound += price.bound(tokens_in, max_tokens, batch=batch)
        expected_in = tokens_in // 2 if image is None else image + (tokens_in - image) // BYTES_PER_TOKEN
        expected += price.cost(expected_in, output, batch=batch)
        if caches:
            part = min(prefix, expected_in)
            reads, writes = (0, part) if index == 0 else (part, 0)
            cached += price.cost(expected_in, output, reads, writes, batch=batch)
    return bound, expected, (cached if caches else None), prefix
