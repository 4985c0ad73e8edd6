"""Providers plug in by name; the provider and model of a run are resolved here.

A provider turns a :class:`VLMRequest` (prompt, JSON schema, one JPEG) into a
:class:`VLMResponse` (the answer's JSON text, token usage, the raw response). It raises
:class:`RetryableError` for what is worth asking again (429, 5xx, timeouts, connection
errors) and :class:`~itagger_lib.errors.ProviderError` for the rest. Retries, budgets and
caching are the engine's job, so every client is built with ``max_retries=0``.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from itagger_lib.errors import ProviderError, VLMError

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace

# Environment variables holding keys, in the order used to pick a provider automatically.
KEY_VARIABLES: dict[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


@dataclass(frozen=True)
class VLMRequest:
    """One question to a model: system and user text, the answer's schema, one image.

    ``image_width``/``image_height`` are the size of the JPEG (for the token bound);
    ``image_base64`` is its base64 text, encoded once per image by the engine (empty: the
    provider encodes ``image_jpeg`` itself).
    """

    system: str
    prompt: str
    schema: dict[str, Any]
    image_jpeg: bytes
    temperature: float = 0.0
    seed: int | None = None
    max_tokens: int = 400
    timeout: float = 60.0
    repeat_index: int = 0  # not sent; lets the stub vary across repeats like a sampled model
    image_width: int = 0
    image_height: int = 0
    image_base64: str = ""

    @property
    def base64(self) -> str:
        return self.image_base64 or base64.b64encode(self.image_jpeg).decode("ascii")


@dataclass
class VLMResponse:
    """What came back: the answer as JSON text (or a refusal), token usage, the raw body.

    ``usage_reported`` is false when the response carried no usage: the engine then charges
    the request's reservation (its maximum cost) rather than nothing.
    """

    text: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    raw: str = ""
    refusal: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    usage_reported: bool = True


class RetryableError(VLMError):
    """A failure worth retrying (429, 5xx, timeout, connection); ``retry_after`` in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, timeout: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.timeout = timeout


class Provider(Protocol):
    name: str
    model: str

    async def complete(self, request: VLMRequest) -> VLMResponse: ...

    async def aclose(self) -> None: ...


ProviderFactory = Callable[..., Provider]
TokenBound = Callable[[str, VLMRequest], int]
_REGISTRY: dict[str, ProviderFactory] = {}
_DEFAULT_MODELS: dict[str, str] = {}
_TOKEN_BOUNDS: dict[str, TokenBound] = {}


def register_provider(
    name: str,
    factory: ProviderFactory,
    *,
    default_model: str | None = None,
    input_token_bound: TokenBound | None = None,
) -> None:
    """Make ``factory(model=..., **options)`` available as provider ``name``.

    ``input_token_bound(model, request)`` gives an upper bound on the input tokens the
    provider bills for ``request`` (see :mod:`itagger_lib.vlm.tokens`); without it the
    engine reserves the generic bound (text bytes + the largest published image formula).
    A bound that takes an ``options`` keyword is given the provider options (a body that
    depends on them, such as the OpenAI provider's ``base_url``); a provider instance with
    its own ``input_token_bound(request)`` method is asked instead once it exists.
    """
    _REGISTRY[name] = factory
    if default_model:
        _DEFAULT_MODELS[name] = default_model
    if input_token_bound is not None:
        _TOKEN_BOUNDS[name] = input_token_bound
    else:
        _TOKEN_BOUNDS.pop(name, None)


def input_token_bound(
    name: str, model: str, request: VLMRequest, options: Mapping[str, Any] | None = None
) -> int:
    """An upper bound on the input tokens provider ``name`` (made with ``options``) bills for ``request``."""
    _load_builtins(name)
    bound = _TOKEN_BOUNDS.get(name)
    if bound is not None:
        if "options" in inspect.signature(bound).parameters:
            return bound(model, request, options=options or {})  # type: ignore[call-arg]
        return bound(model, request)
    from itagger_lib.vlm.tokens import generic_input_token_bound, text_token_bound

    text = text_token_bound(request.system, request.prompt, json.dumps(request.schema))
    return generic_input_token_bound(text, request.image_width, request.image_height)


# Built-in providers, imported on first use so that `import itagger_lib` (and a run with one
# provider) does not pay for importing every SDK.
_BUILTINS = {
    "openai": "itagger_lib.vlm.openai_provider",
    "anthropic": "itagger_lib.vlm.anthropic_provider",
    "stub": "itagger_lib.vlm.stub",
}


def _load_builtins(name: str | None = None) -> None:
    import importlib

    for builtin, module in _BUILTINS.items():
        if (name is None or name == builtin) and builtin not in _REGISTRY:
            importlib.import_module(module)


def available_providers() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def default_model(name: str) -> str | None:
    _load_builtins(name)
    return _DEFAULT_MODELS.get(name)


def get_provider(name: str, model: str | None = None, **options: Any) -> Provider:
    """A provider instance by registry name (``openai``, ``anthropic``, ``stub``, ...)."""
    _load_builtins(name)
    if name not in _REGISTRY:
        raise ProviderError(
            f"unknown VLM provider {name!r}; available: {', '.join(sorted(_REGISTRY))} "
            "(an OpenAI-compatible server such as Ollama, vLLM or LM Studio is provider 'openai' "
            "with OPENAI_BASE_URL or base_url=...)"
        )
    model = model or _DEFAULT_MODELS.get(name)
    if not model:
        raise ProviderError(f"VLM provider {name!r} needs a model; pass model=... or set vlm.model")
    return _REGISTRY[name](model=model, **options)


def read_secret(variable: str) -> str | None:
    """A key from ``$VARIABLE`` or from the file named by ``$VARIABLE_FILE``; never logged."""
    value = os.environ.get(variable)
    if value:
        return value.strip()
    path = os.environ.get(f"{variable}_FILE")
    if path:
        try:
            return Path(path).read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise ProviderError(
                f"{variable}_FILE names {path!r}, which cannot be read ({exc.strerror}); fix the path"
            ) from None
    return None


_KEY_LIKE = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|Bearer\s+\S+)")


def redact(text: str | None, *secrets: str | None) -> str | None:
    """``text`` with the given secrets and anything that looks like an API key masked."""
    if text is None:
        return None
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEY_LIKE.sub("***", text)


def all_secrets() -> list[str]:
    """Every configured key, for scrubbing text before it is stored or shown."""
    found = [read_secret(variable) for variable in KEY_VARIABLES.values()]
    return [secret for secret in found if secret]


def resolve(ws: Workspace | None, provider: str | None = None, model: str | None = None) -> tuple[str, str]:
    """``(provider, model)``: argument > workspace setting > environment > the key present.

    The ``stub`` provider is only used when asked for by name.
    """
    if provider is None and ws is not None:
        provider = ws.get_setting("vlm.provider")
    provider = provider or os.environ.get("ITAGGER_VLM_PROVIDER") or None
    if provider is None:
        for name, variable in KEY_VARIABLES.items():
            if read_secret(variable):
                provider = name
                break
    if provider is None:
        raise ProviderError(
            "no VLM provider configured: set OPENAI_API_KEY or ANTHROPIC_API_KEY (or *_FILE), "
            "ws.set_setting('vlm.provider', ...), ITAGGER_VLM_PROVIDER, or pass provider=...; "
            "provider='stub' gives labelled fake ratings for demos"
        )
    if model is None and ws is not None:
        setting_provider = ws.get_setting("vlm.provider")
        if setting_provider in (None, provider):
            model = ws.get_setting("vlm.model")
    model = model or os.environ.get("ITAGGER_VLM_MODEL") or default_model(provider)
    if not model:
        raise ProviderError(f"no model for VLM provider {provider!r}; pass model=... or set vlm.model")
    get_provider_factory(provider)
    return provider, model


def get_provider_factory(name: str) -> ProviderFactory:
    _load_builtins(name)
    if name not in _REGISTRY:
        _load_builtins()
        raise ProviderError(f"unknown VLM provider {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
