"""A deterministic fake model for tests and demos: ratings derived from the image's hash.

Its rater is always ``vlm:stub/<model>@<prompt version>`` and it costs nothing; it is never chosen
automatically, so stub ratings cannot pass for a real model's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from itagger_lib.vlm.base import VLMRequest, VLMResponse
from itagger_lib.vlm.registry import register_provider


def fake_answer(schema: dict[str, Any], seed_bytes: bytes) -> dict[str, Any]:
    """A valid answer to ``schema`` chosen by hashing ``seed_bytes`` with each property name."""
    answer: dict[str, Any] = {}
    for key, spec in schema.get("properties", {}).items():
        digest = int.from_bytes(hashlib.sha256(seed_bytes + key.encode()).digest()[:8], "big")
        if "enum" in spec:
            answer[key] = spec["enum"][digest % len(spec["enum"])]
        elif spec.get("type") == "array":
            options = spec["items"]["enum"]
            answer[key] = [v for i, v in enumerate(options) if (digest >> i) & 1]
        elif spec.get("type") == "number":
            low, high = spec.get("minimum", 0.0), spec.get("maximum", 1.0)
            answer[key] = low + (high - low) * (digest % 1001) / 1000
        else:
            answer[key] = "stub rationale: no model was asked"
    return answer


def input_token_bound(model: str, request: VLMRequest) -> int:
    """The stub's own usage formula never exceeds this (and it is free anyway)."""
    return len(request.prompt.encode("utf-8")) + 765 * (1 + len(request.more_images))


class StubProvider:
    """``stub`` provider: no network, valid answers, zero cost."""

    name = "stub"

    def __init__(self, model: str = "stub", **_: Any) -> None:
        self.model = model

    async def complete(self, request: VLMRequest) -> VLMResponse:
        seed = hashlib.sha256(request.image_jpeg + "".join(request.more_images).encode()).digest()
        if request.temperature > 0:
            seed += f"{request.repeat_index}:{request.seed}".encode()
        text = json.dumps(fake_answer(request.schema, seed))
        return VLMResponse(
            text=text,
            input_tokens=len(request.prompt) // 4 + 765 * (1 + len(request.more_images)),
            output_tokens=len(text) // 4,
            raw=json.dumps({"stub": True, "answer": json.loads(text)}),
        )

    async def aclose(self) -> None:
        return None


register_provider("stub", StubProvider, default_model="stub", input_token_bound=input_token_bound)
