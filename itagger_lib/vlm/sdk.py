"""The base of the providers that speak through a vendor SDK (OpenAI, Anthropic).

:class:`SDKProvider` holds what they share: the key (from the environment or its secret
file), the base URL, the SDK's async client built with ``max_retries=0`` (retries are the
engine's), the request body serialised once per prompt (:class:`BodyTemplate`) and sent
through the client's own ``post``, the mapping of SDK errors to
:class:`~itagger_lib.errors.RetryableError` or :class:`~itagger_lib.errors.ProviderError`
with keys scrubbed (:func:`translate`), and the input-token bound. A subclass says which
SDK, which endpoint, how the body looks and how to read the answer.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, ClassVar

from itagger_lib.errors import ArgumentError, ProviderError, ProviderSetupError, RetryableError
from itagger_lib.vlm.base import VLMRequest, VLMResponse
from itagger_lib.vlm.secrets import read_secret, redact

__all__ = ["BodyTemplate", "SDKBatchAPI", "SDKProvider", "http_client", "retry_after_seconds", "translate"]


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds from a ``Retry-After`` (or ``retry-after-ms``) header, if it holds a number."""
    if headers is None:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _connect_failure(exc: BaseException) -> BaseException | None:
    """The transport's "could not connect" error behind ``exc``, if that is what it was."""
    seen: BaseException | None = exc.__cause__ or exc.__context__
    while seen is not None:
        if type(seen).__name__ in ("ConnectTimeout", "ConnectError"):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_DNS_ERRORS = ("ClientConnectorDNSError", "DNSError")  # aiohttp's and aiodns's names


def _unreachable(exc: BaseException) -> str | None:
    """``"refused"`` or ``"unknown host"`` when ``exc`` comes from a connection refused or a
    failed DNS lookup (whichever transport, however the SDK names it), else ``None``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
        if isinstance(seen, socket.gaierror) or type(seen).__name__ in (
            "ClientConnectorDNSError",
            "DNSError",
        ):
            return "unknown host (DNS lookup failed)"
        seen = seen.__cause__ or seen.__context__
    return None


def translate(
    exc: Exception, provider: str, key: str | None, sdk: ModuleType, base_url: str | None = None
) -> Exception:
    """The engine's view of an SDK exception: :class:`RetryableError`, :class:`ProviderError`,
    or :class:`ProviderSetupError` for what says the set-up is wrong (a refused connection,
    an unknown host, 401, 403, 404), which the engine does not retry on a run's first request.

    A connection that was never made is a connection error even when the SDK calls it a
    timeout (its aiohttp transport reports a refused connection as ``ConnectTimeout``): the
    request never left, so it is not charged as a timed-out one may be.
    """
    message = redact(f"{provider}: {type(exc).__name__}: {exc}", key) or ""
    where = base_url or "the provider's API"
    if isinstance(exc, sdk.APIConnectionError) and (reason := _unreachable(exc)) is not None:
        return ProviderSetupError(
            f"{provider}: cannot connect to {where}: {reason}; check the base URL "
            f"({provider.upper()}_BASE_URL or base_url=) and that the server is running",
            connect=True,
        )
    if isinstance(exc, sdk.APIConnectionError) and (failure := _connect_failure(exc)) is not None:
        detail = redact(str(failure), key) or type(failure).__name__
        return RetryableError(
            f"{provider}: cannot connect to {where} ({detail}); check the base URL "
            f"({provider.upper()}_BASE_URL or base_url=) and that the server is running"
        )
    if isinstance(exc, sdk.APITimeoutError):
        return RetryableError(message, timeout=True)
    if isinstance(exc, sdk.APIConnectionError):
        return RetryableError(message)
    if isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        if status == 429:
            return RetryableError(message, retry_after=retry_after_seconds(exc.response.headers))
        if status >= 500 or status == 408:
            return RetryableError(message, retry_after=retry_after_seconds(exc.response.headers))
        if status in (401, 403):
            variable = f"{provider.upper()}_API_KEY"
            return ProviderSetupError(
                f"{message} — the server at {where} refused the API key: check {variable} "
                f"(or {variable}_FILE) and that it is meant for this server"
            )
        if status == 404:
            return ProviderSetupError(
                f"{message} — nothing at {where} answers this request: check the model name "
                f"and the base URL ({provider.upper()}_BASE_URL or base_url=)"
            )
        return ProviderError(message)
    return ProviderError(message)


@functools.cache
def _tls_context(package: str) -> Any:
    """The HTTP package's default verified TLS context, built once per process.

    Building one loads the CA bundle (70–160 ms); every run would otherwise pay it again.
    """
    return importlib.import_module(package).create_ssl_context()


def http_client(sdk: ModuleType, http: str) -> Any:
    """The HTTP client for an SDK: its aiohttp transport (``http="aiohttp"``, or ``"auto"``
    when the SDK's ``aiohttp`` extra is installed) or its default httpx client.

    The aiohttp transport costs about 1 ms less CPU per request than httpx's pure-Python
    connection pool (``benchmarks/vlm.py``), which counts on a small shared machine. Both
    get the SDK's default limits and timeouts and one shared TLS context.
    """
    if http not in ("auto", "aiohttp", "httpx"):
        raise ArgumentError(f"http={http!r}: use 'auto', 'aiohttp' or 'httpx'")
    httpx_client = getattr(sdk, "DefaultAsyncHttpxClient", None)
    if httpx_client is None:
        return None  # an SDK too old to have either: its own default
    package = next(
        (c.__module__.split(".")[0] for c in httpx_client.__mro__ if c.__name__ == "AsyncClient"), None
    )
    if package is None:
        return None
    verify = _tls_context(package)
    if http != "httpx":
        try:
            return sdk.DefaultAioHttpClient(verify=verify)
        except (RuntimeError, AttributeError) as exc:  # the SDK's aiohttp extra is not installed
            if http == "aiohttp":
                raise ArgumentError(
                    f"http='aiohttp' needs the SDK's aiohttp transport ({exc}); "
                    f"pip install '{sdk.__name__}[aiohttp]' or use http='httpx'"
                ) from None
    return httpx_client(verify=verify)


# where the image's base64 text goes; random, so no prompt can contain it
_IMAGE = f"itagger-image-{uuid.uuid4().hex}"


class BodyTemplate:
    """A provider's JSON request body, serialised once per prompt around the image.

    ``build(model, request, image)`` returns the body with the string ``image`` where the
    JPEG's base64 text goes. The JSON is the same for every image and repeat of a run and
    costs 0.05–0.3 ms to serialise, so it is cached (a few prompts) and the base64 text is
    spliced in; the part without the image also gives the token bound its text bytes.
    """

    def __init__(self, build: Callable[[str, VLMRequest, str], dict[str, Any]]) -> None:
        self.build = build
        self._cache: dict[tuple[Any, ...], tuple[dict[str, Any], tuple[str, str]]] = {}

    def parts(self, model: str, request: VLMRequest) -> tuple[str, str]:
        """The JSON before and after the first image's base64 text (a comparison's other
        images are in the tail, and such bodies are not cached: each holds its own images)."""
        if request.more_images:
            head, tail = json.dumps(self.build(model, request, _IMAGE), separators=(",", ":")).split(_IMAGE)
            return head, tail
        key: tuple[Any, ...] = (model, request.system, request.prompt, id(request.schema))
        key += (request.temperature, request.max_tokens, request.seed)
        cached = self._cache.get(key)
        if cached is not None and cached[0] is request.schema:  # held, so its id is not reused
            return cached[1]
        text = json.dumps(self.build(model, request, _IMAGE), separators=(",", ":"))
        head, tail = text.split(_IMAGE)
        if len(self._cache) >= 16:
            self._cache.clear()
        self._cache[key] = (request.schema, (head, tail))
        return head, tail

    def text_bytes(self, model: str, request: VLMRequest) -> int:
        """UTF-8 bytes of the body without its images (ASCII JSON: one byte a character)."""
        head, tail = self.parts(model, request)
        return len(head) + len(tail) - sum(len(data) for data in request.more_images)

    def encode(self, model: str, request: VLMRequest) -> bytes:
        head, tail = self.parts(model, request)
        return (head + request.base64 + tail).encode("ascii")

    async def post(self, client: Any, path: str, model: str, request: VLMRequest) -> str:
        """POST the body for ``request`` with the SDK ``client``'s own ``post``; the raw text.

        SDKs whose ``post`` takes no ``content=`` get the body as a mapping instead.
        """
        options: Any = {"timeout": request.timeout}
        if _takes_content(type(client)):
            content = self.encode(model, request)
            return str(await client.post(path, cast_to=str, content=content, options=options))
        body = self.build(model, request, request.base64)  # pragma: no cover - older SDKs
        return str(await client.post(path, cast_to=str, body=body, options=options))  # pragma: no cover


_TAKES_CONTENT: dict[Any, bool] = {}


def _takes_content(client_class: Any) -> bool:
    if client_class not in _TAKES_CONTENT:
        _TAKES_CONTENT[client_class] = "content" in inspect.signature(client_class.post).parameters
    return _TAKES_CONTENT[client_class]


class SDKProvider:
    """A provider over a vendor SDK's async client (see the module docstring).

    Subclasses set the class attributes and implement :meth:`image_tokens` and
    :meth:`parse`; ``body`` is the :class:`BodyTemplate` of their request.

    Parameters
    ----------
    model
        The model name, sent with every request.
    base_url
        Another endpoint (default the ``base_url_variable`` environment variable, else the
        vendor's API).
    api_key
        Default: the ``key_variable`` environment variable or the file ``$<variable>_FILE``.
    timeout
        Seconds per request, for the client (the engine bounds each request too).
    http
        ``"auto"`` (the SDK's aiohttp transport where installed), ``"aiohttp"`` or ``"httpx"``.
    """

    name: str
    sdk: ModuleType
    #: the SDK's async client class (``openai.AsyncOpenAI``, ``anthropic.AsyncAnthropic``)
    client_class: ClassVar[Callable[..., Any]]
    path: ClassVar[str]  # the endpoint, relative to the base URL
    key_variable: ClassVar[str]
    base_url_variable: ClassVar[str]
    framing_tokens: ClassVar[int]  # input tokens the provider adds beyond the body
    answer: ClassVar[str]  # what a response is, for messages ("a chat completion")
    body: BodyTemplate

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
        self.base_url = base_url or os.environ.get(self.base_url_variable) or None
        self._key = api_key or read_secret(self.key_variable) or self._without_key()
        self._client = self.client_class(
            api_key=self._key,
            base_url=self.base_url,
            max_retries=0,
            timeout=timeout,
            http_client=http_client(self.sdk, http),
        )

    def _without_key(self) -> str:
        """The key to use when none is configured; by default there is none to use."""
        variable = self.key_variable
        raise ProviderError(
            f"provider {self.name!r} needs {variable} (or {variable}_FILE) in the environment"
        )

    @staticmethod
    def image_tokens(model: str, width: int, height: int) -> int:
        """An upper bound on the input tokens of one ``width × height`` image for ``model``."""
        raise NotImplementedError

    @classmethod
    def bound(cls, body: BodyTemplate, model: str, request: VLMRequest) -> int:
        """Body bytes without the images + the framing + the image formula of each (see ``tokens``)."""
        sizes = [(request.image_width, request.image_height), *request.more_sizes]
        image = sum(cls.image_tokens(model, width, height) for width, height in sizes)
        return body.text_bytes(model, request) + cls.framing_tokens + image

    def input_token_bound(self, request: VLMRequest) -> int:
        """The input-token bound of ``request`` as this provider sends it (its body's bytes)."""
        return self.bound(self.body, self.model, request)

    def parse(self, text: str) -> VLMResponse:
        """The response body (JSON text) as a :class:`VLMResponse`."""
        raise NotImplementedError

    async def complete(self, request: VLMRequest) -> VLMResponse:
        try:
            text = await self.body.post(self._client, self.path, self.model, request)
        except Exception as exc:  # every failure becomes a retryable or a provider error
            raise translate(exc, self.name, self._key, self.sdk, self.base_url) from None
        try:
            return self.parse(text)
        except (ValueError, AttributeError, TypeError, IndexError) as exc:
            error = redact(f"{self.name}: the response is not {self.answer} ({exc}): {text[:200]}", self._key)
            raise ProviderError(error or "") from None

    async def aclose(self) -> None:
        await self._client.close()


class SDKBatchAPI:
    """What the batch APIs over a vendor SDK share: the provider's client, and its errors
    translated as the provider's own (a refused key on the upload is a set-up error)."""

    def __init__(self, provider: SDKProvider) -> None:
        self.provider = provider
        self.client = provider._client

    def _error(self, exc: Exception) -> Exception:
        p = self.provider
        return translate(exc, p.name, p._key, p.sdk, p.base_url)
