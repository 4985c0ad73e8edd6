"""OpenAI Chat Completions (also Ollama, vLLM, LM Studio and other compatible servers).

Structured output through ``response_format={"type": "json_schema", ...}``.

The answer's length limit goes as ``max_completion_tokens`` to OpenAI's own API (its
reasoning models, the o-series and gpt-5, refuse the older ``max_tokens``; every current
chat model takes the new name) and as ``max_tokens`` to a compatible server at another
``base_url`` (Ollama, vLLM and LM Studio read that one); ``token_limit=`` overrides the
choice.

The request goes through the SDK client's own ``post`` (its auth, base URL, headers,
timeouts and errors) with a body built here, rather than ``chat.completions.create``: that
method walks every message part through the SDK's TypedDict transform and parses the answer
into pydantic models, about 4 ms of CPU per request that buy nothing for a fixed body of
plain JSON (measured in ``benchmarks/vlm.py``). The JSON is serialised once per prompt and
the image's base64 text (encoded once per image) spliced in (:class:`BodyTemplate`).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import openai

from itagger_lib.errors import ProviderError
from itagger_lib.vlm.base import BatchAPI, VLMRequest, VLMResponse
from itagger_lib.vlm.registry import register_provider
from itagger_lib.vlm.sdk import BodyTemplate, SDKProvider
from itagger_lib.vlm.tokens import OPENAI_FRAMING_TOKENS, openai_image_tokens

TOKEN_LIMITS = ("max_completion_tokens", "max_tokens")
OPENAI_HOST = "api.openai.com"


def chat_body(
    model: str,
    request: VLMRequest,
    image: str,
    token_limit: str = "max_tokens",
    cache_key: bool = False,
) -> dict[str, Any]:
    """The Chat Completions request body for ``request``; ``image`` is the JPEG's base64 text.

    ``token_limit``: the name the answer's length limit is sent under (see the module).
    The schema and the system text (instructions and codebook) come before the image: the
    prefix OpenAI caches by itself. ``cache_key`` adds ``prompt_cache_key`` (OpenAI's own
    API only), which keeps requests with this prefix on the machines that cached it.
    """
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": request.system},
            {
                "role": "user",
                "content": [
                    *request.image_parts(image, _image_url),
                    {"type": "text", "text": request.prompt},
                ],
            },
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "ratings", "schema": request.schema, "strict": True},
        },
        "temperature": request.temperature,
        token_limit: request.max_tokens,
    }
    if request.seed is not None:
        body["seed"] = request.seed
    if cache_key:
        body["prompt_cache_key"] = "itagger-" + hashlib.sha256(request.system.encode()).hexdigest()[:16]
    return body


def _image_url(data: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}}


def _builder(token_limit: str, cache_key: bool) -> Callable[[str, VLMRequest, str], dict[str, Any]]:
    def build(model: str, request: VLMRequest, image: str) -> dict[str, Any]:
        return chat_body(model, request, image, token_limit, cache_key)

    return build


BODIES = {
    (name, official): BodyTemplate(_builder(name, official))
    for name in TOKEN_LIMITS
    for official in (False, True)
}


def is_openai(base_url: str | None) -> bool:
    """Whether ``base_url`` is OpenAI's own API (``None``: the SDK's default, which is)."""
    return base_url is None or (urlsplit(base_url).hostname or "").lower() == OPENAI_HOST


def default_token_limit(base_url: str | None) -> str:
    """``max_completion_tokens`` for OpenAI's own API, ``max_tokens`` for any other server."""
    return "max_completion_tokens" if is_openai(base_url) else "max_tokens"


def _base_url(options: Mapping[str, Any]) -> str | None:
    return options.get("base_url") or os.environ.get("OPENAI_BASE_URL") or None


def local_server(options: Mapping[str, Any]) -> str | None:
    """The base URL of a compatible server that is not OpenAI's API (priced at 0 by default)."""
    url = _base_url(options)
    return None if is_openai(url) else url


def resolve_token_limit(base_url: str | None = None, token_limit: str | None = None) -> str:
    """The name a provider made with these options sends the limit under (``OPENAI_BASE_URL``
    stands in for a missing ``base_url``, as for the client)."""
    if token_limit is not None and token_limit not in TOKEN_LIMITS:
        raise ProviderError(
            f"openai: token_limit={token_limit!r}; use 'max_completion_tokens' (OpenAI's API), "
            "'max_tokens' (older compatible servers) or leave it unset to choose by base URL"
        )
    return token_limit or default_token_limit(base_url or os.environ.get("OPENAI_BASE_URL") or None)


class OpenAIProvider(SDKProvider):
    """``openai`` provider; ``base_url`` (or ``OPENAI_BASE_URL``) points at any compatible server.

    Takes :class:`~itagger_lib.vlm.sdk.SDKProvider`'s options, and ``token_limit``: the name
    the answer's length limit is sent under (see the module docstring).
    """

    name = "openai"
    sdk = openai
    client_class = openai.AsyncOpenAI
    path = "/chat/completions"
    key_variable = "OPENAI_API_KEY"
    base_url_variable = "OPENAI_BASE_URL"
    framing_tokens = OPENAI_FRAMING_TOKENS
    answer = "a chat completion"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        http: str = "auto",
        token_limit: str | None = None,
    ) -> None:
        base_url = base_url or os.environ.get(self.base_url_variable) or None
        self.token_limit = resolve_token_limit(base_url, token_limit)
        self.body = BODIES[(self.token_limit, is_openai(base_url))]
        super().__init__(model, base_url=base_url, api_key=api_key, timeout=timeout, http=http)

    def _without_key(self) -> str:
        if self.base_url is None:
            raise ProviderError(
                "provider 'openai' needs OPENAI_API_KEY (or OPENAI_API_KEY_FILE) in the environment; "
                "for a local OpenAI-compatible server set OPENAI_BASE_URL"
            )
        return "not-needed"  # local servers (Ollama, LM Studio) accept any key

    @staticmethod
    def image_tokens(model: str, width: int, height: int) -> int:
        return openai_image_tokens(model, width, height)

    def batch_api(self) -> BatchAPI:
        """The provider's batch API (half the price, answers within 24 hours)."""
        from itagger_lib.vlm.openai_batch import OpenAIBatchAPI

        return OpenAIBatchAPI(self)

    def parse(self, text: str) -> VLMResponse:
        response = json.loads(text)
        choices = response.get("choices") or []
        message = choices[0].get("message") if choices else None
        usage = response.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        refusal = message.get("refusal") if isinstance(message, dict) else "no choices in the response"
        return VLMResponse(
            text=message.get("content") if isinstance(message, dict) else None,
            input_tokens=int(usage.get("prompt_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            raw=text,
            refusal=refusal,
            extra={"finish_reason": choices[0].get("finish_reason") if choices else None},
            usage_reported="prompt_tokens" in usage,
            cached_input_tokens=int(details.get("cached_tokens") or 0),
            cache_write_tokens=int(details.get("cache_write_tokens") or 0),
        )


def input_token_bound(model: str, request: VLMRequest, options: Mapping[str, Any] | None = None) -> int:
    """Body bytes without the image + framing + the model's image formula (see ``tokens``).

    ``options``: the provider options (``base_url``, ``token_limit``), which decide the body.
    """
    options = options or {}
    name = resolve_token_limit(options.get("base_url"), options.get("token_limit"))
    return OpenAIProvider.bound(BODIES[(name, is_openai(_base_url(options)))], model, request)


register_provider(
    "openai",
    OpenAIProvider,
    default_model="gpt-4o-mini",
    input_token_bound=input_token_bound,
    local_server=local_server,
    prompt_cache_min_tokens=1024,
    image_tokens=openai_image_tokens,
)
