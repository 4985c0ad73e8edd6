"""The contract between the VLM engine and a provider: a request, a response, the provider.

A provider turns a :class:`VLMRequest` (prompt, JSON schema, one JPEG) into a
:class:`VLMResponse` (the answer's JSON text, token usage, the raw response). It raises
:class:`~itagger_lib.errors.RetryableError` for what is worth asking again (429, 5xx,
timeouts, connection errors) and :class:`~itagger_lib.errors.ProviderError` for the rest.
Retries, budgets, caching and the ledger are the engine's job, not the provider's: as
httpx's transports know a ``Request`` and never the ``Client``, a provider knows a request
and never the run, the workspace or the database.

A provider with a batch API (half the price, answers within 24 hours) also has
``batch_api()`` returning a :class:`BatchAPI`: it turns requests into the provider's batch
entries, submits them, and reports a batch's :class:`BatchState` and its
:class:`BatchItem` results.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "BatchAPI",
    "BatchItem",
    "BatchState",
    "Provider",
    "ProviderFactory",
    "TokenBound",
    "VLMRequest",
    "VLMResponse",
]


@dataclass(frozen=True)
class VLMRequest:
    """One question to a model: system and user text, the answer's schema, one image or more.

    ``image_width``/``image_height`` are the size of the JPEG (for the token bound);
    ``image_base64`` is its base64 text, encoded once per image by the engine (empty: the
    provider encodes ``image_jpeg`` itself). A comparison (pairwise, best–worst) sends its
    other images as ``more_images`` (base64 JPEGs, in order, with their sizes in
    ``more_sizes``) and may put a caption before each image (``image_captions``, one per
    image: "Image 1", ...); they go into the same user message, in that order.
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
    more_images: tuple[str, ...] = ()
    more_sizes: tuple[tuple[int, int], ...] = ()
    image_captions: tuple[str, ...] = ()

    @property
    def base64(self) -> str:
        return self.image_base64 or base64.b64encode(self.image_jpeg).decode("ascii")

    def image_parts(self, first: str, part: Callable[[str], dict[str, Any]]) -> list[dict[str, Any]]:
        """The message parts of the images, in order: ``part(base64)`` for each (``first``
        stands for the first image's text), each after its caption when there are captions."""
        parts: list[dict[str, Any]] = []
        for index, data in enumerate((first, *self.more_images)):
            if self.image_captions:
                parts.append({"type": "text", "text": self.image_captions[index]})
            parts.append(part(data))
        return parts


@dataclass
class VLMResponse:
    """What came back: the answer as JSON text (or a refusal), token usage, the raw body.

    ``input_tokens`` counts every input token; ``cached_input_tokens`` (prompt-cache reads)
    and ``cache_write_tokens`` (writes) are among them, priced at their own rates.
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
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


class Provider(Protocol):
    """A model behind an API: ``name`` (its registry name), ``model``, and the two calls.

    A provider may also have ``input_token_bound(request) -> int``, an upper bound on the
    input tokens it bills for the request as it will send it; the engine reserves with it.
    """

    name: str
    model: str

    async def complete(self, request: VLMRequest) -> VLMResponse: ...

    async def aclose(self) -> None: ...


#: ``factory(model=..., **options)`` makes a provider
#: (see :func:`~itagger_lib.vlm.registry.register_provider`).
ProviderFactory = Callable[..., Provider]
#: ``bound(model, request) -> int``: at most this many input tokens are billed for ``request``.
TokenBound = Callable[[str, VLMRequest], int]


#: Normalised batch states: the provider's own status is kept beside them.
BATCH_OPEN = ("in_progress", "cancelling")


@dataclass
class BatchState:
    """A provider batch as the provider reports it.

    ``status`` is ``in_progress``, ``cancelling`` or ``ended`` (results can be read, also
    for an expired, cancelled or failed batch); ``provider_status`` the provider's own word;
    ``counts`` its request counts; ``details`` what reading the results needs (file ids, a
    results URL); ``error`` why the provider failed the whole batch.
    """

    id: str
    status: str
    provider_status: str
    counts: dict[str, int] = field(default_factory=dict)
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class BatchItem:
    """The result of one request of a batch: its ``custom_id`` and either the ``response``
    (parsed as an interactive one) or an ``error`` (errored, expired, cancelled: not billed)."""

    custom_id: str
    response: VLMResponse | None = None
    error: str | None = None


class BatchAPI(Protocol):
    """A provider's batch API (see the module docstring).

    ``max_requests`` and ``max_bytes`` bound one batch; ``entry`` is one request as the
    batch carries it (JSON bytes; ``custom_id`` matches it to its result); ``submit`` sends
    entries as a new batch marked with ``tag`` (in the provider's metadata where it has
    any); ``find`` lists the provider's batches that may be the one submitted with ``tag``
    (interrupted before its id was recorded): the engine takes one only when exactly one
    is not already known.
    """

    max_requests: int
    max_bytes: int

    def entry(self, custom_id: str, request: VLMRequest) -> bytes: ...

    async def submit(self, entries: list[bytes], tag: str) -> BatchState: ...

    async def state(self, batch_id: str) -> BatchState: ...

    async def results(self, state: BatchState) -> list[BatchItem]: ...

    async def cancel(self, batch_id: str) -> BatchState: ...

    async def find(self, tag: str, created_after: datetime, n_requests: int) -> list[BatchState]: ...
