"""Anthropic Messages API; structured output through a forced tool call.

As for OpenAI, the body is built here and sent through the SDK client's ``post`` (its
auth, headers, timeouts and errors) instead of ``messages.create``, whose TypedDict
transform and pydantic parsing cost milliseconds of CPU per request.
"""

from __future__ import annotations

import json
import os
from typing import Any

import anthropic

from itagger_lib.errors import ProviderError
from itagger_lib.vlm._http import BodyTemplate, http_client, translate
from itagger_lib.vlm.registry import VLMRequest, VLMResponse, read_secret, redact, register_provider
from itagger_lib.vlm.tokens import ANTHROPIC_FRAMING_TOKENS, anthropic_image_tokens

TOOL = "record_ratings"


def messages_body(model: str, request: VLMRequest, image: str) -> dict[str, Any]:
    """The Messages request body for ``request``; ``image`` is the JPEG's base64 text."""
    return {
        "model": model,
        "max_tokens": request.max_tokens,
        "system": request.system,
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
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": image},
                    },
                    {"type": "text", "text": request.prompt},
                ],
            }
        ],
        "temperature": request.temperature,
    }


BODY = BodyTemplate(messages_body)


def input_token_bound(model: str, request: VLMRequest) -> int:
    """Body bytes without the image + the tool-use framing + ``⌈w·h/750⌉`` (see ``tokens``)."""
    image = anthropic_image_tokens(request.image_width, request.image_height)
    return BODY.text_bytes(model, request) + ANTHROPIC_FRAMING_TOKENS + image


class AnthropicProvider:
    """``anthropic`` provider; ``base_url`` (or ``ANTHROPIC_BASE_URL``) overrides the endpoint."""

    name = "anthropic"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        http: str = "auto",
    ) -> None:
        self.model = model
        self._key = api_key or read_secret("ANTHROPIC_API_KEY")
        if not self._key:
            raise ProviderError(
                "provider 'anthropic' needs ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY_FILE) in the environment"
            )
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._client = anthropic.AsyncAnthropic(
            api_key=self._key,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client(anthropic, http),
        )

    async def complete(self, request: VLMRequest) -> VLMResponse:
        try:
            raw = await BODY.post(self._client, "/v1/messages", self.model, request)
        except Exception as exc:  # every failure becomes a retryable or a provider error
            raise translate(exc, self.name, self._key, anthropic) from None
        try:
            response = json.loads(raw)
            blocks = response.get("content") or []
            stop_reason = response.get("stop_reason")
            usage = response.get("usage") or {}
            usage_reported = "input_tokens" in usage
            # cache writes and reads are input too (billed at other rates; counted in full here)
            input_tokens = sum(
                int(usage.get(key) or 0)
                for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            )
            output_tokens = int(usage.get("output_tokens") or 0)
            text = None
            notes = []
            for block in blocks:
                if block.get("type") == "tool_use" and block.get("name") == TOOL:
                    text = json.dumps(block.get("input"))
                elif block.get("type") == "text":
                    notes.append(str(block.get("text")))
        except (ValueError, AttributeError, TypeError) as exc:
            error = redact(f"anthropic: the response is not a message ({exc}): {raw[:200]}", self._key)
            raise ProviderError(error or "") from None
        refusal = None
        if stop_reason == "refusal":
            refusal = " ".join(notes) or "stop_reason refusal"
        elif text is None:
            text = " ".join(notes) or None  # no tool call: validation decides (and repairs)
        return VLMResponse(
            text=text,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            usage_reported=usage_reported,
            raw=raw,
            refusal=refusal,
            extra={"stop_reason": stop_reason},
        )

    async def aclose(self) -> None:
        await self._client.close()


register_provider(
    "anthropic",
    AnthropicProvider,
    default_model="claude-3-5-haiku-latest",
    input_token_bound=input_token_bound,
)
