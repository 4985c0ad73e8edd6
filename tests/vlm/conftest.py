from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.vlm_server import FakeVLMServer

KEY = "sk-itagger-test-SECRET-0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-itagger-test-SECRET-9876543210"


@pytest.fixture
def ws(workspace: Any, sample_dir: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A workspace with the sample images, provider keys in the environment, prices set."""
    from itagger_lib.vlm.ledger import set_price

    for name in (
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "ITAGGER_VLM_PROVIDER",
        "ITAGGER_VLM_MODEL",
        "OPENAI_API_KEY_FILE",
        "ANTHROPIC_API_KEY_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    workspace.ingest(sample_dir, progress=False)
    set_price(workspace, "openai", "test-model", 1.0, 4.0)
    set_price(workspace, "anthropic", "test-claude", 3.0, 15.0)
    return workspace


@pytest.fixture
def server() -> Iterator[FakeVLMServer]:
    with FakeVLMServer() as fake:
        yield fake
