"""Keys never leak; provider choice follows argument > setting > environment > key present."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.cli import main
from itagger_lib.db.models import Base
from itagger_lib.errors import ProviderError, ProviderSetupError
from itagger_lib.vlm.prompts import PROMPT_VERSION
from itagger_lib.vlm.rating import rate_with_vlm
from itagger_lib.vlm.registry import available_providers, get_provider, register_provider, resolve
from tests.fakes.vlm_server import FakeVLMServer
from tests.vlm.conftest import ANTHROPIC_KEY, KEY


def _all_stored_text(ws: Any) -> str:
    parts = []
    with ws.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            for row in connection.execute(sa.select(table)):
                parts.append(repr(tuple(row)))
    return "\n".join(parts)


def test_no_key_in_database_output_logs_or_errors(ws: Any, capsys: Any, caplog: Any, tmp_path: Any) -> None:
    caplog.set_level(logging.DEBUG)
    # a first answer, so the 401 is this call's failure (before any answer it would stop the run)
    script = ["ok", "401", "out_of_range", "out_of_range", "refusal"]
    with FakeVLMServer(script=script) as server:
        report = rate_with_vlm(
            ws,
            images=[1, 2, 3, 4, 5],
            attributes=["coherence"],
            provider="openai",
            model="test-model",
            provider_options={"base_url": server.openai_url},
            concurrency=1,
            rationale=True,
            progress=True,
        )
        print(report)
        # the server saw the key (it was really used) and echoed it back in the 401 body
        assert KEY in server.requests[1]["headers"]["authorization"]
    assert len(report.failed) == 3 and "401" in report.failed[0][1]
    with FakeVLMServer(script=["401"]) as server, pytest.raises(ProviderSetupError) as caught:
        rate_with_vlm(
            ws,
            images=[6],
            attributes=["coherence"],
            provider="anthropic",
            model="test-claude",
            provider_options={"base_url": server.url},
            progress=False,
        )
    print(caught.value)  # the set-up error's message is scanned for the key below too
    assert main(
        [
            "--database-url",
            ws.settings.database_url,
            "--store",
            str(ws.store.root),
            "vlm",
            "rate",
            "--provider",
            "openai",
            "--model",
            "test-model",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--timeout",
            "0.2",
            "7",
        ]
    ) in (0, 1)
    out = capsys.readouterr()
    text = "\n".join(
        [_all_stored_text(ws), out.out, out.err, caplog.text, str(ws.failures()), repr(ws.runs().to_dict())]
    )
    assert "invalid credentials" in text  # the echoed error was stored ...
    for secret in (KEY, ANTHROPIC_KEY, KEY[10:30], ANTHROPIC_KEY[10:30]):
        assert secret not in text  # ... with the key scrubbed


def test_resolution_order(ws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    assert resolve(ws, "anthropic", "m") == ("anthropic", "m")
    assert resolve(ws)[0] == "openai"  # both keys present: openai first
    monkeypatch.delenv("OPENAI_API_KEY")
    assert resolve(ws)[0] == "anthropic"
    monkeypatch.setenv("ITAGGER_VLM_PROVIDER", "openai")
    monkeypatch.setenv("ITAGGER_VLM_MODEL", "env-model")
    assert resolve(ws) == ("openai", "env-model")
    ws.set_setting("vlm.provider", "anthropic")
    ws.set_setting("vlm.model", "setting-model")
    assert resolve(ws) == ("anthropic", "setting-model")
    assert resolve(ws, "openai") == ("openai", "env-model")  # the setting's model belongs to anthropic
    ws.set_setting("vlm.provider", None)
    monkeypatch.delenv("ITAGGER_VLM_PROVIDER")
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with pytest.raises(ProviderError, match="no VLM provider configured"):
        resolve(None)  # the stub is never chosen automatically
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    monkeypatch.setenv("OPENAI_API_KEY_FILE", str(key_file))
    assert resolve(None)[0] == "openai"
    with pytest.raises(ProviderError, match="unknown VLM provider 'nope'"):
        resolve(None, "nope")
    monkeypatch.delenv("OPENAI_API_KEY_FILE")
    with pytest.raises(ProviderError, match="OPENAI_API_KEY") as info:
        get_provider("openai", "m")
    assert KEY not in str(info.value)
    assert {"openai", "anthropic", "stub"} <= set(available_providers())


def test_registry_plugs_in_providers(ws: Any) -> None:
    from itagger_lib.vlm.ledger import set_price
    from itagger_lib.vlm.stub import StubProvider

    class Echo(StubProvider):
        name = "echo"

    register_provider("echo", lambda model, **kw: Echo(model), default_model="e1")
    set_price(ws, "echo", "e1", 0.0, 0.0)
    report = rate_with_vlm(ws, images=[1], provider="echo", progress=False)
    assert report.rater == f"vlm:echo/e1@{PROMPT_VERSION}" and report.succeeded == 1
