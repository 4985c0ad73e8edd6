"""The reservation is an upper bound of what a request may cost; a provider billing more stops the run.

The bound (``itagger_lib.vlm.tokens``): text = UTF-8 bytes of the body without the image,
plus a framing allowance, plus the provider's image formula for the JPEG sent; output =
``max_tokens``. The loopback servers here bill the worst case the bound allows (computed
independently below from the raw body and the JPEG they received), or far more.
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image

from itagger_lib.db.models import Run, RunFailure, VLMCall
from itagger_lib.errors import BudgetExceededError
from itagger_lib.runs import start_run
from itagger_lib.vlm import ledger, tokens
from itagger_lib.vlm.rating import rate_with_vlm
from itagger_lib.vlm.writer import Finish, LedgerWriter
from tests.fakes.vlm_server import FakeVLMServer

ATTRS = ["coherence", "setting", "people_present"]
MODELS = {"openai": "gpt-4o", "anthropic": "test-claude"}


def _rows(ws: Any, model: Any) -> list[dict[str, Any]]:
    with ws.engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(model)).mappings()]


def _rate(ws: Any, provider: str, server: FakeVLMServer, **kw: Any) -> Any:
    url = server.openai_url if provider == "openai" else server.url
    kw.setdefault("attributes", ATTRS)
    return rate_with_vlm(
        ws,
        provider=provider,
        model=MODELS[provider],
        provider_options={"base_url": url},
        progress=False,
        retry_base_s=0.05,
        **kw,
    )


def test_published_image_formulas() -> None:
    # OpenAI's worked examples (high detail): 1024² → 768² = 4 tiles; 2048×4096 → 768×1536 = 6 tiles
    assert tokens.openai_image_tokens("gpt-4o", 1024, 1024) == 85 + 170 * 4 == 765
    assert tokens.openai_image_tokens("gpt-4o-2024-08-06", 2048, 4096) == 85 + 170 * 6 == 1105
    assert tokens.openai_image_tokens("gpt-4o-mini", 1024, 1024) == 2833 + 5667 * 4
    assert tokens.openai_image_tokens("gpt-4o", 512, 512) == 85 + 170  # never scaled up
    # patch models: 32-px patches × multiplier (1024² = 1024 patches)
    assert tokens.openai_image_tokens("gpt-4.1-mini", 1024, 1024) == math.ceil(1024 * 1.62)
    # an unknown model (a local server, a new name) gets the largest of all formulas
    unknown = tokens.openai_image_tokens("llava:13b", 800, 600)
    assert unknown == tokens.openai_image_tokens("gpt-4o-mini", 800, 600) > 10 * 765
    # Anthropic: w·h/750 on the size sent (1000² ≈ 1334, 1092² ≈ 1590 in its table)
    assert tokens.anthropic_image_tokens(1000, 1000) == 1334
    assert tokens.anthropic_image_tokens(1092, 1092) == 1590


def test_text_bound_is_the_utf8_byte_count() -> None:
    # a byte-level BPE token covers at least one byte, so bytes bound tokens from above
    assert tokens.text_token_bound("abc") == 3
    assert tokens.text_token_bound("façade", "日本") == 7 + 6
    assert tokens.text_token_bound("") == 0


def _worst_case(path: str, body: dict[str, Any], raw: bytes) -> tuple[int, int]:
    """The most a provider may bill under the bound, computed from what it received."""
    if path.endswith("/messages"):
        data = body["messages"][0]["content"][0]["source"]["data"]
        framing = tokens.ANTHROPIC_FRAMING_TOKENS
    else:
        data = body["messages"][1]["content"][0]["image_url"]["url"].split(",", 1)[1]
        framing = tokens.OPENAI_FRAMING_TOKENS
    width, height = Image.open(io.BytesIO(base64.b64decode(data))).size
    if path.endswith("/messages"):
        image = math.ceil(width * height / 750)
    else:  # gpt-4o, high detail: fit 2048, short side at most 768, 512-px tiles
        scale = min(1.0, 2048 / max(width, height))
        scale *= min(1.0, 768 / (min(width, height) * scale))
        image = 85 + 170 * math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return len(raw) - len(data) + framing + image, body["max_tokens"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_worst_case_billing_never_passes_the_budget(ws: Any, provider: str) -> None:
    ledger.set_price(ws, provider, MODELS[provider], 100.0, 100.0)
    with FakeVLMServer(latency=0.05, usage=_worst_case) as server:
        dry = _rate(ws, provider, server, images=[1], dry_run=True)
        budget = 4.5 * dry.max_cost_usd
        report = _rate(ws, provider, server, repeats=4, concurrency=16, budget_usd=budget)
    calls = _rows(ws, VLMCall)
    # every answer billed exactly its reservation: the bound is tight for this server, and holds
    assert calls and all(c["cost_usd"] == pytest.approx(c["reserved_usd"], rel=1e-9) for c in calls)
    assert sum(c["cost_usd"] for c in calls) <= budget
    assert len(calls) == 4 == report.succeeded  # 4 reservations fit at once; nothing is left over
    assert "budget" in (report.stopped or "") and "above the" not in report.stopped
    assert report.failed == [] and _rows(ws, RunFailure) == []


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_billing_above_the_reservation_stops_the_run(ws: Any, provider: str) -> None:
    ledger.set_price(ws, provider, MODELS[provider], 1.0, 1.0)
    with FakeVLMServer(latency=0.2, usage=(10_000_000, 50)) as server:
        budget = 100 * _rate(ws, provider, server, images=[1], dry_run=True).max_cost_usd
        report = _rate(ws, provider, server, repeats=2, concurrency=4, budget_usd=budget)
        sent = len(server.requests)
    # the first answer showed the bound broken: only the requests already in flight went out
    assert 1 <= sent <= 4 and report.requests == sent and report.skipped == 24 - sent
    assert "above the" in (report.stopped or "") and "no new requests" in report.stopped
    calls = _rows(ws, VLMCall)
    assert len(calls) == sent and all(c["status"] == "ok" for c in calls)  # answers are kept ...
    actual = (10_000_000 + 50) / 1e6
    assert all(c["cost_usd"] == pytest.approx(actual) for c in calls)  # ... at their cost
    assert all(c["cost_usd"] > 1000 * c["reserved_usd"] for c in calls)
    spent = ledger.spent(ws, report.run_id)
    # the guarantee when the bound breaks: reservations stayed within the budget; the overshoot is
    # what the calls in flight billed above their reservations, and no request follows it
    assert sum(c["reserved_usd"] for c in calls) <= budget
    assert spent == pytest.approx(sum(c["cost_usd"] for c in calls))
    assert spent - budget <= sum(c["cost_usd"] - c["reserved_usd"] for c in calls)
    failures = _rows(ws, RunFailure)
    assert len(failures) == sent and all("above the" in f["reason"] for f in failures)
    with ws.engine.connect() as connection:
        run = connection.execute(sa.select(Run).where(Run.id == report.run_id)).mappings().one()
    assert "above the" in run["error"] and run["status"] == "partial"


def test_unsent_reservations_are_released_and_finishes_batched(ws: Any) -> None:
    ledger.ensure_lock_row(ws)
    run_id = start_run(ws.engine, "vlm", {}, "tester", n_total=2)
    call = {
        "cache_key": "k",
        "provider": "openai",
        "model": "m",
        "prompt_hash": "h",
        "prompt_version": "1",
        "image_sha256": "s" * 64,
        "parameters": {},
        "repeat_index": 0,
    }

    async def main() -> tuple[int, int]:
        writer = LedgerWriter(ws, run_id=run_id, run_budget=1.0)
        first, second = await asyncio.gather(
            writer.reserve(0.4, call=call), writer.reserve(0.4, call={**call, "repeat_index": 1})
        )
        with pytest.raises(BudgetExceededError, match="run budget"):
            await writer.reserve(0.4, call={**call, "repeat_index": 2})
        writer.release(second)
        writer.finish(
            Finish(first, {"status": "ok", "cost_usd": 0.1, "attempts": 1}, failures=[("x", None, "why")])
        )
        writer.close()
        return first, writer.batches

    first, batches = asyncio.run(main())
    assert batches == 3  # the two reservations went in one transaction
    calls = _rows(ws, VLMCall)
    assert [(c["id"], c["status"], c["cost_usd"]) for c in calls] == [(first, "ok", 0.1)]
    assert [f["reason"] for f in _rows(ws, RunFailure)] == ["why"]


def test_no_retry_is_sent_once_the_run_is_stopped(ws: Any) -> None:
    ledger.set_price(ws, "openai", "gpt-4o", 1.0, 1.0)
    # one request is rate limited (retry in 1 s); meanwhile the other reports usage above its bound
    with FakeVLMServer(script=[("429", 1), ("usage", 10_000_000, 50)]) as server:
        report = _rate(ws, "openai", server, images=[1, 2, 3], concurrency=2)
        assert len(server.requests) == 2  # the retry was not sent, nor the third image
    assert "above the" in (report.stopped or "") and report.skipped == 1
    statuses = sorted((c["status"], c["error"] or "") for c in _rows(ws, VLMCall))
    assert statuses[0][0] == "failed" and "429" in statuses[0][1] and statuses[1][0] == "ok"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_answer_without_usage_is_charged_its_reservation(ws: Any, provider: str) -> None:
    ledger.set_price(ws, provider, MODELS[provider], 1.0, 1.0)
    with FakeVLMServer(script=["no_usage"]) as server:
        report = _rate(ws, provider, server, images=[1], budget_usd=10.0)
    assert report.succeeded == 1
    (call,) = _rows(ws, VLMCall)
    # nothing to bill by: the maximum the request could have cost is what it is taken to cost
    assert call["status"] == "ok" and call["input_tokens"] == 0
    assert call["cost_usd"] == pytest.approx(call["reserved_usd"]) and call["cost_usd"] > 0
    assert ledger.spent(ws, report.run_id) == pytest.approx(call["reserved_usd"])
