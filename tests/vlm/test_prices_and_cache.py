"""The shipped price table, workspace prices over it, and prompt-cache pricing."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.db.models import VLMCall, VLMPrice
from itagger_lib.vlm.prices import STALE_DAYS, Price, get_price, price_rows, shipped_prices
from itagger_lib.vlm.rating import rate_with_vlm
from tests.fakes.vlm_server import INPUT_TOKENS, OUTPUT_TOKENS, FakeVLMServer

CACHED = 600  # tokens the fake server reports as cache reads (or the first time, Anthropic writes)


def test_the_shipped_table_is_dated_sourced_and_consistent() -> None:
    table = shipped_prices()
    assert {p for p, _ in table} == {"openai", "anthropic"}
    for (provider, model), price in table.items():
        where = f"{provider}/{model}"
        assert price.origin == "shipped" and price.read_on is not None, where
        assert price.source.startswith("https://"), where
        assert price.input_per_mtok > 0 and price.output_per_mtok > price.input_per_mtok, where
        # both providers document their batch APIs at half the standard price
        assert price.batch_input_per_mtok == pytest.approx(price.input_per_mtok / 2), where
        assert price.batch_output_per_mtok == pytest.approx(price.output_per_mtok / 2), where
        if price.cached_input_per_mtok is not None:
            assert price.cached_input_per_mtok < price.input_per_mtok, where
    for model in ("gpt-4o-mini", "gpt-4.1-mini", "gpt-5-mini"):
        assert ("openai", model) in table
    for model in ("claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"):
        assert ("anthropic", model) in table


def test_the_readmes_dry_run_prints_an_estimate_in_a_fresh_workspace(ws: Any) -> None:
    report = ws.rate_with_vlm(provider="openai", model="gpt-4o-mini", dry_run=True)
    assert report.max_cost_usd is not None and report.max_cost_usd > 0
    assert "estimated $" in str(report) and "cost unknown" not in str(report)
    # the codebook prefix is long enough to be cached: an estimate with the cache, and lower
    assert (
        report.expected_cached_cost_usd is not None
        and report.expected_cached_cost_usd < report.expected_cost_usd
    )
    assert "with prompt caching" in str(report)
    short = ws.rate_with_vlm(provider="openai", model="gpt-4o-mini", attributes=["coherence"], dry_run=True)
    assert short.expected_cached_cost_usd is None  # a prefix below 1024 tokens is not cached
    batch = ws.rate_with_vlm(provider="openai", model="gpt-4o-mini", dry_run=True, mode="batch")
    assert batch.max_cost_usd == pytest.approx(report.max_cost_usd / 2) and "batch API" in str(batch)


def test_workspace_prices_override_and_dated_snapshots_match(ws: Any) -> None:
    assert get_price(ws, "openai", "gpt-4o-mini").origin == "shipped"
    ws.set_vlm_price("openai", "gpt-4o-mini", 9.0, 9.0, source="our contract")
    own = get_price(ws, "openai", "gpt-4o-mini")
    assert (own.origin, own.input_per_mtok, own.source) == ("workspace", 9.0, "our contract")
    assert own.batch_input_per_mtok is None and own.rates(batch=True).input == 9.0  # no discount assumed
    haiku = get_price(ws, "anthropic", "claude-haiku-4-5-20251001")
    assert haiku == shipped_prices()[("anthropic", "claude-haiku-4-5")]
    assert get_price(ws, "openai", "gpt-4o-2024-05-13").input_per_mtok == 5.0  # its own launch price
    assert get_price(ws, "openai", "gpt-4o-2024-11-20").input_per_mtok == 2.5
    frame = ws.vlm_prices()
    row = frame[(frame.provider == "openai") & (frame.model == "gpt-4o-mini")].iloc[0]
    assert row.origin == "workspace" and row.input == 9.0
    assert len(frame) == len(shipped_prices()) + 2  # and the two test models of the fixture


def test_prices_older_than_90_days_are_flagged(ws: Any) -> None:
    from itagger_lib.widgets.admin import AdminCockpit

    later = max(p.read_on for p in shipped_prices().values()) + timedelta(days=STALE_DAYS + 1)  # type: ignore[operator]
    assert all(r["stale"] for r in price_rows(ws, today=later))
    assert not any(r["stale"] for r in price_rows(ws, today=date(2026, 12, 6)))
    ws.set_vlm_price("openai", "test-old", 1.0, 2.0)
    with ws.engine.begin() as connection:
        connection.execute(
            sa.update(VLMPrice)
            .where(VLMPrice.model == "test-old")
            .values(updated_at=datetime(2026, 1, 2, tzinfo=UTC))
        )
    dry = ws.rate_with_vlm(provider="openai", model="test-old", attributes=["coherence"], dry_run=True)
    assert "read on 2026-01-02" in str(dry) and "days ago" in str(dry)
    card = AdminCockpit(ws).engine_card()
    assert any("openai/test-old" in line for line in card["stale_prices"])
    assert "prices older than 90 days" in AdminCockpit(ws).engine_html()


def test_itagger_vlm_prices_prints_an_aligned_table(ws: Any, capsys: Any) -> None:
    from itagger_lib.cli import main

    base = ["--database-url", ws.settings.database_url, "--store", str(ws.store.root)]
    assert main([*base, "vlm", "prices"]) == 0
    out = capsys.readouterr().out
    assert "Empty DataFrame" not in out and "gpt-4o-mini" in out and "claude-haiku-4-5" in out
    header, *lines = out.splitlines()
    assert header.split()[:4] == ["provider", "model", "input", "output"]
    rows = [line for line in lines if line.split() and line.split()[0] in ("openai", "anthropic")]
    assert len({line.index(line.split()[2]) + len(line.split()[2]) for line in rows}) == 1  # right-aligned
    set_ = ["vlm", "prices", "set", "openai", "gpt-x", "1", "2", "--batch-in", "0.5", "--batch-out", "1"]
    assert main([*base, *set_, "--cached", "0.25"]) == 0
    price = get_price(ws, "openai", "gpt-x")
    assert (price.batch_input_per_mtok, price.batch_output_per_mtok, price.cached_input_per_mtok) == (
        0.5,
        1,
        0.25,
    )


def test_price_rates_of_cache_reads_and_writes_interactive_and_in_a_batch() -> None:
    price = Price(1.0, 4.0, cached_input_per_mtok=0.1, cache_write_per_mtok=1.25, batch_input_per_mtok=0.5)
    assert price.rates() == price.rates(batch=False)
    batch = price.rates(batch=True)
    # a batch halves cache writes with the input (documented); reads keep the dearer reading
    assert (batch.input, batch.output, batch.cached_input, batch.cache_write) == (0.5, 4.0, 0.1, 0.625)
    # the reservation prices every input token at the dearest input rate
    assert price.bound(1000, 100) == pytest.approx((1000 * 1.25 + 100 * 4.0) / 1e6)
    assert price.cost(1000, 100, 600, 0) == pytest.approx((400 * 1.0 + 600 * 0.1 + 100 * 4.0) / 1e6)
    assert price.cost(1000, 100, 0, 600) == pytest.approx((400 * 1.0 + 600 * 1.25 + 100 * 4.0) / 1e6)


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_cached_tokens_are_read_from_usage_and_priced_at_the_cached_rate(ws: Any, provider: str) -> None:
    model = {"openai": "test-model", "anthropic": "test-claude"}[provider]
    ws.set_vlm_price(provider, model, 1.0, 4.0, cached_input_per_mtok=0.1, cache_write_per_mtok=1.25)
    with FakeVLMServer(prompt_cache=CACHED) as server:
        url = server.openai_url if provider == "openai" else server.url
        report = rate_with_vlm(
            ws,
            images=[1, 2, 3],
            provider=provider,
            model=model,
            provider_options={"base_url": url},
            progress=False,
            concurrency=1,
        )
        first_body = server.requests[0]["body"]
    assert report.succeeded == 3
    with ws.engine.connect() as connection:
        calls = [dict(c) for c in connection.execute(sa.select(VLMCall).order_by(VLMCall.id)).mappings()]
    plain = (INPUT_TOKENS - CACHED) * 1.0 + OUTPUT_TOKENS * 4.0
    read = (plain + CACHED * 0.1) / 1e6
    if provider == "anthropic":  # the first request writes the cache, at the write rate
        assert (calls[0]["cache_write_tokens"], calls[0]["cached_input_tokens"]) == (CACHED, 0)
        assert calls[0]["cost_usd"] == pytest.approx((plain + CACHED * 1.25) / 1e6)
        assert first_body["system"][0]["cache_control"] == {"type": "ephemeral"}
        assert "Codebook" in first_body["system"][0]["text"]
        assert first_body["messages"][0]["content"][0]["type"] == "image"
    else:  # OpenAI caches a repeated prefix by itself; writes cost nothing extra
        assert (calls[0]["cache_write_tokens"], calls[0]["cached_input_tokens"]) == (0, 0)
        assert calls[0]["cost_usd"] == pytest.approx((INPUT_TOKENS * 1.0 + OUTPUT_TOKENS * 4.0) / 1e6)
        system, user = first_body["messages"]
        assert system["role"] == "system" and "Codebook" in system["content"]
        assert [part["type"] for part in user["content"]] == ["image_url", "text"]
    for call in calls[1:]:
        assert call["input_tokens"] == INPUT_TOKENS and call["cached_input_tokens"] == CACHED
        assert call["cost_usd"] == pytest.approx(read)
    assert report.spend_usd == pytest.approx(sum(c["cost_usd"] for c in calls))


def test_openai_sends_a_prompt_cache_key_only_to_its_own_api() -> None:
    from itagger_lib.vlm.base import VLMRequest
    from itagger_lib.vlm.openai_provider import BODIES, OpenAIProvider

    request = VLMRequest(system="codebook", prompt="rate", schema={"type": "object"}, image_jpeg=b"")
    official = BODIES[("max_completion_tokens", True)].build("gpt-4o-mini", request, "IMG")
    local = BODIES[("max_tokens", False)].build("llava", request, "IMG")
    assert official["prompt_cache_key"].startswith("itagger-") and "prompt_cache_key" not in local
    assert OpenAIProvider("gpt-4o-mini", api_key="sk-test").body is BODIES[("max_completion_tokens", True)]
