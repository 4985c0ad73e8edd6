"""API keys: read from the environment or a secret file, never stored, scrubbed from text.

Error messages, raw responses and rationales pass through :func:`redact` before they are
stored or shown.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from itagger_lib.errors import ProviderError

__all__ = ["KEY_VARIABLES", "all_secrets", "read_secret", "redact"]

# Environment variables holding keys, in the order used to pick a provider automatically.
KEY_VARIABLES: dict[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}


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
