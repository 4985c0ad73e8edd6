"""VLM ratings: providers (a registry), prompts, the ledger with its cache and budget, the engine."""

from __future__ import annotations

from itagger_lib.vlm.registry import available_providers, get_provider, register_provider

__all__ = ["available_providers", "get_provider", "register_provider"]
