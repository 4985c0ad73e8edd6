"""OpenAI Chat Completions (also Ollama, vLLM, LM Studio and other compatible servers).

Structured output through ``response_format={"type": "json_schema", ...}``.

The request goes through the SDK client's own ``post`` (its auth, base URL, headers,
timeouts and errors) with a body built here, rather than ``chat.completions.create``: that
method walks every message part through the SDK's TypedDict transform and parses the answer
into pydantic models, about 4 ms of CPU per request that buy nothing for a fixed body of
plain JSON (measured in ``benchmarks/vlm.py``). The JSON is serialised once per prompt and
the image's base64 text (encoded once per image) spliced in (:class:`BodyTemplate`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import openai

from itagger_lib.errors import ProviderError
from itagger_lib.vlm._http import BodyTemplate, http_client, translate
from itagger_lib.vlm.registry import VLMRequest, VLMResponse, read_secret, redact, register_provider
from itagger_lib.vlm.tokens import OPENAI_FRAMING_TOKENS, openai_image_tokens


def chat_body(model: str, request: VLMRequest, image: str) -> dict[str, Any]:
    """The Chat Completions request body for ``request``; ``image`` is the JPEG's base64 text."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": request.system},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": request.prompt},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
                ],
            },
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "ratings", "schema": request.schema, "strict": True},
        },
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
    }
    if request.seed is not None:
        body["seed"] = request.seed
    return body


BODY = BodyTemplate(chat_body)


def input_token_bound(model: str, request: VLMRequest) -> int:
    """Body bytes without the image + framing + the model's image formula (see ``tokens``)."""
    image = openai_image_tokens(model, request.image_width, request.image_height)
    return BODY.text_bytes(model, request) + OPENAI_FRAMING_TOKENS + image


class OpenAIProvider:
    """``openai`` provider; ``base_url`` (or ``OPENAI_BASE_URL``) points at any compatible server."""

    name = "openai"

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
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self._key = api_key or read_secret("OPENAI_API_KEY")
        if not self._key:
            if base_url is None:
                raise ProviderError(
                    "provider 'openai' needs OPENAI_API_KEY (or OPENAI_API_KEY_FILE) in the environment; "
                    "for a local OpenAI-compatible server set OPENAI_BASE_URL"
                )
            self._key = "not-needed"  # local servers (Ollama, LM Studio) accept any key
        self.base_url = base_url
        self._client = openai.AsyncOpenAI(
            api_key=self._key,
            base_url=base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client(openai, http),
        )

    async def complete(self, request: VLMRequest) -> VLMResponse:
        try:
            text = await BODY.post(self._client, "/chat/completions", self.model, request)
        except Exception as exc:  # every failure becomes a retryable or a provider error
            raise translate(exc, self.name, self._key, openai) from None
        try:
            response = json.loads(text)
            choices = response.get("choices") or []
            message = choices[0].get("message") if choices else None
            usage = response.get("usage") or {}
            usage_reported = "prompt_tokens" in usage
            input_tokens = int(usage.get("prompt_tokens") or 0)
            output_tokens = int(usage.get("completion_tokens") or 0)
        except (ValueError, AttributeError, TypeError, IndexError) as exc:
            error = redact(f"openai: the response is not a chat completion ({exc}): {text[:200]}", self._key)
            raise ProviderError(error or "") from None
        refusal = message.get("refusal") if isinstance(message, dict) else "no choices in the response"
        return VLMResponse(
            text=message.get("content") if isinstance(message, dict) else None,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            raw=text,
            refusal=refusal,
            extra={"finish_reason": choices[0].get("finish_reason") if choices else None},
            usage_reported=usage_reported,
        )

    async def aclose(self) -> None:
        await self._client.close()


register_provider("openai", OpenAIProvider, default_model="gpt-4o-mini", input_token_bound=input_token_bound)
