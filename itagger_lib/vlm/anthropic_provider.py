"""Anthropic Messages API; structured output through a forced tool call.

As for OpenAI, the body is built here and sent through the SDK client's ``post`` (its
auth, headers, timeouts and errors) instead of ``messages.create``, whose TypedDict
transform and pydantic parsing cost milliseconds of CPU per request.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic

from itagger_lib.vlm.base import BatchAPI, VLMRequest, VLMResponse
from itagger_lib.vlm.registry import register_provider
from itagger_lib.vlm.sdk import BodyTemplate, SDKProvider
from itagger_lib.vlm.tokens import ANTHROPIC_FRAMING_TOKENS, anthropic_image_tokens

TOOL = "record_ratings"


def messages_body(model: str, request: VLMRequest, image: str) -> dict[str, Any]:
    """The Messages request body for ``request``; ``image`` is the JPEG's base64 text.

    The tool (its schema) and the system text (instructions and codebook) form the prefix
    that is the same for every image; a ``cache_control`` breakpoint after it lets
    Anthropic's prompt cache reuse it (a prefix below the model's minimum is not cached,
    and nothing fails).
    """
    return {
        "model": model,
        "max_tokens": request.max_tokens,
        "system": [{"type": "text", "text": request.system, "cache_control": {"type": "ephemeral"}}],
        "tools": [
            {
                "name": TOOL,
                "description": "Record the ratings of the image.",
                "input_schema": request.schema,
            }
        ],
        "tool_choice": {"type": "tool", "name": TOOL},
        "messages": [
            {
                "role": "user",
                "content": [
                    *request.image_parts(image, _image),
                    {"type": "text", "text": request.prompt},
                ],
            }
        ],
        "temperature": request.temperature,
    }


def _image(data: str) -> dict[str, Any]:
    return {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}


BODY = BodyTemplate(messages_body)


class AnthropicProvider(SDKProvider):
    """``anthropic`` provider; ``base_url`` (or ``ANTHROPIC_BASE_URL``) overrides the endpoint.

    Takes :class:`~itagger_lib.vlm.sdk.SDKProvider`'s options.
    """

    name = "anthropic"
    sdk = anthropic
    client_class = anthropic.AsyncAnthropic
    path = "/v1/messages"
    key_variable = "ANTHROPIC_API_KEY"
    base_url_variable = "ANTHROPIC_BASE_URL"
    framing_tokens = ANTHROPIC_FRAMING_TOKENS
    answer = "a message"
    body = BODY

    @staticmethod
    def image_tokens(model: str, width: int, height: int) -> int:
        """``⌈w·h/750⌉`` for the size sent, whatever the model (see ``tokens``)."""
        return anthropic_image_tokens(width, height)

    def batch_api(self) -> BatchAPI:
        """The provider's batch API (half the price, answers within 24 hours)."""
        from itagger_lib.vlm.anthropic_batch import AnthropicBatchAPI

        return AnthropicBatchAPI(self)

    def parse(self, text: str) -> VLMResponse:
        response = json.loads(text)
        blocks = response.get("content") or []
        stop_reason = response.get("stop_reason")
        usage = response.get("usage") or {}
        cache_write = int(usage.get("cache_creation_input_tokens") or 0)
        cache_read = int(usage.get("cache_read_input_tokens") or 0)
        input_tokens = int(usage.get("input_tokens") or 0) + cache_write + cache_read
        answer = None
        notes = []
        for block in blocks:
            if block.get("type") == "tool_use" and block.get("name") == TOOL:
                answer = json.dumps(block.get("input"))
            elif block.get("type") == "text":
                notes.append(str(block.get("text")))
        refusal = None
        if stop_reason == "refusal":
            refusal = " ".join(notes) or "stop_reason refusal"
        elif answer is None:
            answer = " ".join(notes) or None  # no tool call: validation decides (and repairs)
        return VLMResponse(
            text=answer,
            input_tokens=input_tokens,
            output_tokens=int(usage.get("output_tokens") or 0),
            usage_reported="input_tokens" in usage,
            raw=text,
            refusal=refusal,
            extra={"stop_reason": stop_reason},
            cached_input_tokens=cache_read,
            cache_write_tokens=cache_write,
        )


def input_token_bound(model: str, request: VLMRequest) -> int:
    """Body bytes without the image + the tool-use framing + ``⌈w·h/750⌉`` (see ``tokens``)."""
    return AnthropicProvider.bound(BODY, model, request)


register_provider(
    "anthropic",
    AnthropicProvider,
    default_model="claude-haiku-4-5",
    input_token_bound=input_token_bound,
    prompt_cache_min_tokens=1024,
    image_tokens=lambda model, width, height: anthropic_image_tokens(width, height),
)
