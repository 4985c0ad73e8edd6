"""Mapping the SDKs' HTTP errors onto retryable and permanent errors, keys scrubbed."""

from __future__ import annotations

from typing import Any

from itagger_lib.errors import ProviderError
from itagger_lib.vlm.registry import RetryableError, redact


def retry_after_seconds(headers: Any) -> float | None:
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


def translate(exc: Exception, provider: str, key: str | None, sdk: Any) -> Exception:
    """The engine's view of an SDK exception: :class:`RetryableError` or :class:`ProviderError`."""
    message = redact(f"{provider}: {type(exc).__name__}: {exc}", key) or ""
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
        hint = ""
        if status in (401, 403):
            hint = " (check the API key in the environment or its *_FILE)"
        elif status == 404:
            hint = " (check the model name and the base URL)"
        return ProviderError(f"{message}{hint}")
    return ProviderError(message)
