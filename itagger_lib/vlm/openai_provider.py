"""OpenAI Chat Completions (also Ollama, vLLM, LM Studio and other compatible servers).

Structured output through ``response_format={"type": "json_schema", ...}``.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import openai

from itagger_lib.errors import ProviderError
from itagger_lib.vlm._http import translate
from itagger_lib.vlm.registry import VLMRequest, VLMResponse, read_secret, register_provider


class OpenAIProvider:
    """``openai`` provider; ``base_url`` (or ``OPENAI_BASE_URL``) points at any compatible server."""

    name = "openai"

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0
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
            api_key=self._key, base_url=base_url, max_retries=0, timeout=timeout
        )

    async def complete(self, request: VLMRequest) -> VLMResponse:
        image = base64.b64encode(request.image_jpeg).decode("ascii")
        options: dict[str, Any] = {}
        if request.seed is not None:
            options["seed"] = request.seed
        try:
            response = await self._client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model,
                messages=[
                    {"role": "system", "content": request.system},
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": request.prompt},
                            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{image}"}},
                        ],
                    },
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": "ratings", "schema": request.schema, "strict": True},
                },
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                timeout=request.timeout,
                **options,
            )
        except Exception as exc:  # every failure becomes a retryable or a provider error
            raise translate(exc, self.name, self._key, openai) from None
        usage = response.usage
        message = response.choices[0].message if response.choices else None
        refusal = getattr(message, "refusal", None) if message else None
        if message is None:
            refusal = "no choices in the response"
        return VLMResponse(
            text=None if message is None else message.content,
            input_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            output_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            raw=response.model_dump_json(),
            refusal=refusal,
            extra={"finish_reason": response.choices[0].finish_reason if response.choices else None},
        )

    async def aclose(self) -> None:
        await self._client.close()


register_provider("openai", OpenAIProvider, default_model="gpt-4o-mini")
