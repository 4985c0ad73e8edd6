"""Upper bounds on a request's input tokens, for reserving its maximum cost.

A request is reserved at ``price(input bound, max_tokens)`` before it is sent, so the bound
must never be below what the provider bills. It has three parts:

* **Text**: the UTF-8 byte count of every text the request carries (the JSON body without
  the image). Byte-level BPE tokenisers (OpenAI's ``o200k``/``cl100k``, Anthropic's) map
  every token to a sequence of one or more bytes, so a text of ``n`` bytes is at most ``n``
  tokens; the JSON punctuation, keys and the model name only add slack. Real prompts run at
  about 4 bytes per token, so this part overestimates by about 4×.
* **Framing**: tokens the provider adds that are not in the body: role and turn markers,
  the structured-output or tool-use wrapper (Anthropic documents its tool-use system prompt
  at 264–530 tokens depending on the model and ``tool_choice``).
* **Image**: the provider's published formula for the image size actually sent.

References
----------
OpenAI, "Images and vision — calculating costs", platform.openai.com/docs/guides/images-vision.
Anthropic, "Vision — evaluate image size", docs.anthropic.com/en/docs/build-with-claude/vision.
Anthropic, "Tool use — pricing", docs.anthropic.com/en/docs/agents-and-tools/tool-use/overview.
"""

from __future__ import annotations

import math

# role/turn markers and the response_format wrapper: a few tokens per message, with room
OPENAI_FRAMING_TOKENS = 200
# the tool-use system prompt (at most 530 tokens, Claude 3 Opus with tool_choice auto), with room
ANTHROPIC_FRAMING_TOKENS = 800

# high-detail tile formula: (base, per 512-px tile), by model-name prefix, longest first
_OPENAI_TILES: dict[str, tuple[int, int]] = {
    "gpt-4o-mini": (2833, 5667),
    "computer-use": (65, 129),
    "gpt-4o": (85, 170),
    "gpt-4.5": (85, 170),
    "gpt-4.1": (85, 170),
    "gpt-4-": (85, 170),
    "gpt-5": (70, 140),
    "o1": (75, 150),
    "o3": (75, 150),
}
# patch formula: tokens = 32-px patches × multiplier, by model-name prefix
_OPENAI_PATCHES: dict[str, float] = {
    "gpt-4.1-mini": 1.62,
    "gpt-4.1-nano": 2.46,
    "gpt-5-mini": 1.62,
    "gpt-5-nano": 2.46,
    "o4-mini": 1.72,
}


def text_token_bound(*texts: str) -> int:
    """At most this many tokens encode ``texts``: their UTF-8 byte count.

    A byte-level BPE token stands for at least one byte, so ``tokens(t) <= len(t.encode())``.
    """
    return sum(len(text.encode("utf-8")) for text in texts)


def openai_tile_tokens(width: int, height: int, base: int, per_tile: int) -> int:
    """OpenAI high-detail image tokens: ``base + per_tile · tiles``.

    The image is scaled (never up) to fit 2048 × 2048, then so that its short side is at
    most 768 px, and covered with 512-px tiles. Low detail costs ``base``, less than this.
    """
    scale = min(1.0, 2048 / max(width, height))
    scale *= min(1.0, 768 / (min(width, height) * scale))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return base + per_tile * tiles


def openai_patch_tokens(width: int, height: int, multiplier: float) -> int:
    """OpenAI patch image tokens: ``⌈w/32⌉ · ⌈h/32⌉ · multiplier`` (the 1536-patch cap ignored,
    which only makes the bound larger)."""
    return math.ceil(math.ceil(width / 32) * math.ceil(height / 32) * multiplier)


def openai_image_tokens(model: str, width: int, height: int) -> int:
    """An upper bound on the input tokens of one image of ``width × height`` px for ``model``.

    A known model uses its published formula (high detail, which is ≥ low); an unknown one
    the largest formula of all, so an OpenAI-compatible server or a new model is never
    under-reserved.
    """
    for prefix, multiplier in _OPENAI_PATCHES.items():
        if model.startswith(prefix):
            return openai_patch_tokens(width, height, multiplier)
    for prefix, (base, per_tile) in _OPENAI_TILES.items():
        if model.startswith(prefix):
            return openai_tile_tokens(width, height, base, per_tile)
    return max(
        max(openai_tile_tokens(width, height, *tiles) for tiles in _OPENAI_TILES.values()),
        max(openai_patch_tokens(width, height, m) for m in _OPENAI_PATCHES.values()),
    )


def anthropic_image_tokens(width: int, height: int) -> int:
    """Anthropic image tokens, ``⌈w · h / 750⌉`` for the size sent.

    An image above the model's limit (long edge 1568 px or about 1.15 megapixels up to
    Claude 4.6; 2576 px on Opus 4.7) is first scaled down, which only lowers the count, so
    the formula on the size sent bounds every model.
    """
    return math.ceil(width * height / 750)


def generic_input_token_bound(text_bytes: int, width: int, height: int) -> int:
    """The bound for a provider without its own: text bytes, the larger framing, and the
    largest image formula of OpenAI's and Anthropic's."""
    image = max(openai_image_tokens("", width, height), anthropic_image_tokens(width, height))
    return text_bytes + max(OPENAI_FRAMING_TOKENS, ANTHROPIC_FRAMING_TOKENS) + image
