"""Anthropic Messages API; structured output through a forced tool call."""

from __future__ import annotations

import base64
import inspect
import json
import os

import anthropic

from itagger_lib.errors import ProviderError
from itagger_lib.vlm._http import translate
from itagger_lib.vlm.registry import VLMRequest, VLMResponse, read_secret, register_provider

TOOL = "record_ratings"
# Newer SDKs dropped the typed `temperature` argument; the API field is then sent as extra body.
_TYPED_TEMPERATURE = (
    "temperature" in inspect.signature(anthropic.resources.messages.AsyncMessages.create).parameters
)


class AnthropicProvider:
    """``anthropic`` provider; ``base_url`` (or ``ANTHROPIC_BASE_URL``) overrides the endpoint."""

    name = "anthropic"

    def __init__(
        self, model: str, *, base_url: str | None = None, api_key: str | None = None, timeout: float = 60.0
    ) -> None:
        self.model = model
        self._key = api_key or read_secret("ANTHROPIC_API_KEY")
        if not self._key:
            raise ProviderError(
                "provider 'anthropic' needs ANTHROPIC_API_KEY (or ANTHROPIC_API_KEY_FILE) in the environment"
            )
        self.base_url = base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._client = anthropic.AsyncAnthropic(
            api_key=self._key, base_url=self.base_url, max_retries=0, timeout=timeout
        )

    async def complete(self, request: VLMRequest) -> VLMResponse:
        image = base64.b64encode(request.image_jpeg).decode("ascii")
        sampling = {"temperature": request.temperature}
        options = sampling if _TYPED_TEMPERATURE else {"extra_body": sampling}
        try:
            response = await self._client.messages.create(
                model=self.model,
                max_tokens=request.max_tokens,
                system=request.system,
                tools=[
                    {
                        "name": TOOL,
                        "description": "Record the ratings of the image.",
                        "input_schema": request.schema,
                    }
                ],
                tool_choice={"type": "tool", "name": TOOL},
                messages=[
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
                timeout=request.timeout,
                **options,
            )
        except Exception as exc:  # every failure becomes a retryable or a provider error
            raise translate(exc, self.name, self._key, anthropic) from None
        text = None
        notes = []
        for block in response.content:
            if block.type == "tool_use" and block.name == TOOL:
                text = json.dumps(block.input)
            elif block.type == "text":
                notes.append(block.text)
        refusal = None
        if response.stop_reason == "refusal":
            refusal = " ".join(notes) or "stop_reason refusal"
        elif text is None:
            text = " ".join(notes) or None  # no tool call: validation decides (and repairs)
        return VLMResponse(
            text=text,
            input_tokens=int(response.usage.input_tokens or 0),
            output_tokens=int(response.usage.output_tokens or 0),
            raw=response.model_dump_json(),
            refusal=refusal,
            extra={"stop_reason": response.stop_reason},
        )

    async def aclose(self) -> None:
        await self._client.close()


register_provider("anthropic", AnthropicProvider, default_model="claude-3-5-haiku-latest")
