"""Providers plug in by name; the provider and model of a run are resolved here.

The contract a provider meets is in :mod:`itagger_lib.vlm.base`; the built-in providers
(``openai``, ``anthropic``, ``stub``) register themselves when first asked for, so that
``import itagger_lib`` (and a run with one provider) does not import every SDK.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from itagger_lib.errors import ProviderError, remedy
from itagger_lib.stored_settings import get_setting
from itagger_lib.vlm.base import Provider, ProviderFactory, TokenBound, VLMRequest
from itagger_lib.vlm.secrets import KEY_VARIABLES, read_secret
from itagger_lib.vlm.tokens import generic_input_token_bound, text_token_bound

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = [
    "available_providers",
    "default_model",
    "get_provider",
    "get_provider_factory",
    "image_tokens",
    "input_token_bound",
    "local_server",
    "prompt_cache_min_tokens",
    "register_provider",
    "resolve",
]

_REGISTRY: dict[str, ProviderFactory] = {}
_DEFAULT_MODELS: dict[str, str] = {}
_TOKEN_BOUNDS: dict[str, TokenBound] = {}
_LOCAL_SERVERS: dict[str, Callable[[Mapping[str, Any]], str | None]] = {}
_CACHE_MIN_TOKENS: dict[str, int] = {}
_IMAGE_TOKENS: dict[str, Callable[[str, int, int], int]] = {}


def register_provider(
    name: str,
    factory: ProviderFactory,
    *,
    default_model: str | None = None,
    input_token_bound: TokenBound | None = None,
    local_server: Callable[[Mapping[str, Any]], str | None] | None = None,
    prompt_cache_min_tokens: int | None = None,
    image_tokens: Callable[[str, int, int], int] | None = None,
) -> None:
    """Make ``factory(model=..., **options)`` available as provider ``name``.

    ``input_token_bound(model, request)`` gives an upper bound on the input tokens the
    provider bills for ``request`` (see :mod:`itagger_lib.vlm.tokens`); without it the
    engine reserves the generic bound (text bytes + the largest published image formula).
    A bound that takes an ``options`` keyword is given the provider options (a body that
    depends on them, such as the OpenAI provider's ``base_url``); a provider instance with
    its own ``input_token_bound(request)`` method is asked instead once it exists.

    ``local_server(options)`` returns the base URL when the provider options (or the
    environment) point at a local compatible server rather than the provider's own API:
    such a model is priced at 0 unless the workspace sets a price. ``prompt_cache_min_tokens``
    is the shortest prompt prefix the provider caches (the dry run's estimate with caching;
    ``None``: it does not cache). ``image_tokens(model, width, height)``: the tokens an
    image of that size is billed as (the dry run's estimate; the bound may be looser).
    """
    _REGISTRY[name] = factory
    if default_model:
        _DEFAULT_MODELS[name] = default_model
    _set(_TOKEN_BOUNDS, name, input_token_bound)
    _set(_LOCAL_SERVERS, name, local_server)
    _set(_CACHE_MIN_TOKENS, name, prompt_cache_min_tokens)
    _set(_IMAGE_TOKENS, name, image_tokens)


def _set(table: dict[str, Any], name: str, value: object) -> None:
    if value is None:
        table.pop(name, None)
    else:
        table[name] = value


def local_server(name: str, options: Mapping[str, Any] | None = None) -> str | None:
    """The base URL of the local server provider ``name`` would talk to with ``options``,
    or ``None`` for the provider's own API (or a provider without local servers)."""
    _load_builtins(name)
    check = _LOCAL_SERVERS.get(name)
    return None if check is None else check(options or {})


def image_tokens(name: str, model: str, width: int, height: int) -> int | None:
    """The tokens provider ``name`` bills for a ``width × height`` image, if it says."""
    _load_builtins(name)
    count = _IMAGE_TOKENS.get(name)
    return None if count is None else count(model, width, height)


def prompt_cache_min_tokens(name: str) -> int | None:
    """The shortest prefix provider ``name`` caches, or ``None`` if it has no prompt cache."""
    _load_builtins(name)
    return _CACHE_MIN_TOKENS.get(name)


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
    text = text_token_bound(request.system, request.prompt, json.dumps(request.schema))
    first = generic_input_token_bound(text, request.image_width, request.image_height)
    return first + sum(generic_input_token_bound(0, w, h) for w, h in request.more_sizes)


# Built-in providers, imported on first use so that `import itagger_lib` (and a run with one
# provider) does not pay for importing every SDK.
_BUILTINS = {
    "openai": "itagger_lib.vlm.openai_provider",
    "anthropic": "itagger_lib.vlm.anthropic_provider",
    "stub": "itagger_lib.vlm.stub",
}


def _load_builtins(name: str | None = None) -> None:
    for builtin, module in _BUILTINS.items():
        if (name is None or name == builtin) and builtin not in _REGISTRY:
            importlib.import_module(module)


def available_providers() -> list[str]:
    """Every registered provider name (the built-ins included), sorted."""
    _load_builtins()
    return sorted(_REGISTRY)


def default_model(name: str) -> str | None:
    """The model provider ``name`` uses when none is given."""
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
        raise ProviderError(f"VLM provider {name!r} needs a model; {_give_model()}")
    return _REGISTRY[name](model=model, **options)


def resolve(ctx: Context | None, provider: str | None = None, model: str | None = None) -> tuple[str, str]:
    """``(provider, model)``: argument > workspace setting > environment > the key present.

    The settings are the stored ``vlm.provider`` and ``vlm.model`` of ``ctx``'s database
    (none without a context). The ``stub`` provider is only used when asked for by name.
    """
    names = ("vlm.provider", "vlm.model")
    stored = {} if ctx is None else {name: get_setting(ctx.engine, name) for name in names}
    if provider is None:
        provider = _text(stored.get("vlm.provider"))
    provider = provider or os.environ.get("ITAGGER_VLM_PROVIDER") or None
    if provider is None:
        for name, variable in KEY_VARIABLES.items():
            if read_secret(variable):
                provider = name
                break
    if provider is None and os.environ.get("OPENAI_BASE_URL"):
        provider = "openai"  # a local OpenAI-compatible server (Ollama, vLLM) needs no key
    if provider is None:
        raise ProviderError(
            "no VLM provider configured: set OPENAI_API_KEY or ANTHROPIC_API_KEY (or *_FILE), "
            "OPENAI_BASE_URL for a local OpenAI-compatible server, ITAGGER_VLM_PROVIDER, or "
            + remedy(
                "ws.set_setting('vlm.provider', ...), or pass provider=...; "
                "provider='stub' gives labelled fake ratings for demos",
                "give --provider; --provider stub gives labelled fake ratings for demos",
            )
        )
    if model is None and stored.get("vlm.provider") in (None, provider):
        model = _text(stored.get("vlm.model"))
    model = model or os.environ.get("ITAGGER_VLM_MODEL") or default_model(provider)
    if not model:
        raise ProviderError(f"no model for VLM provider {provider!r}; {_give_model()}")
    get_provider_factory(provider)
    return provider, model


def _give_model() -> str:
    return remedy("pass model=... or set vlm.model", "give --model, or set ITAGGER_VLM_MODEL")


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def get_provider_factory(name: str) -> ProviderFactory:
    """The factory registered as ``name``; :class:`ProviderError` naming the known ones."""
    _load_builtins(name)
    if name not in _REGISTRY:
        _load_builtins()
        raise ProviderError(f"unknown VLM provider {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
