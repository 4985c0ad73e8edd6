"""The engine against loopback servers through the real openai / anthropic SDKs."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Rating, Run, RunFailure, VLMCall
from itagger_lib.errors import KillSwitchError, PriceUnknownError
from itagger_lib.vlm.prompts import PROMPT_VERSION
from itagger_lib.vlm.rating import rate_with_vlm
from tests.fakes.vlm_server import INPUT_TOKENS, OUTPUT_TOKENS, FakeVLMServer
from tests.vlm.conftest import KEY

ATTRS = ["coherence", "setting", "people_present"]


def _openai(ws: Any, server: FakeVLMServer, **kw: Any) -> Any:
    kw.setdefault("attributes", ATTRS)
    kw.setdefault("progress", False)
    kw.setdefault("retry_base_s", 0.05)
    kw["provider_options"] = {"base_url": server.openai_url, **kw.get("provider_options", {})}
    return rate_with_vlm(ws, provider="openai", model="test-model", **kw)


def _rows(ws: Any, model: Any) -> list[dict[str, Any]]:
    with ws.engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(model)).mappings()]


def test_openai_rates_records_and_caches(ws: Any, server: FakeVLMServer) -> None:
    images = list(ws.images().index[:3])
    report = _openai(ws, server, images=images)
    assert (report.requests, report.succeeded, report.cache_hits, report.failed) == (3, 3, 0, [])
    assert len(server.requests) == 3
    assert all(r["headers"]["authorization"].startswith("Bearer sk-") for r in server.requests)
    body = server.requests[0]["body"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["model"] == "test-model" and body["temperature"] == 0.0
    assert all(max(size) <= 1024 for size in server.images())
    ratings = _rows(ws, Rating)
    assert len(ratings) == 3 * len(ATTRS)
    assert {r["rater"] for r in ratings} == {f"vlm:openai/test-model@{PROMPT_VERSION}"}
    assert {r["source"] for r in ratings} == {"vlm"}
    setting = next(r for r in ratings if r["attribute"] == "setting")
    assert setting["value_text"] == "exterior_natural"  # the middle of 4 categories
    calls = _rows(ws, VLMCall)
    assert len(calls) == 3 and {c["status"] for c in calls} == {"ok"}
    expected_cost = (INPUT_TOKENS * 1.0 + OUTPUT_TOKENS * 4.0) / 1e6
    for call in calls:
        assert (call["input_tokens"], call["output_tokens"]) == (INPUT_TOKENS, OUTPUT_TOKENS)
        assert call["cost_usd"] == pytest.approx(expected_cost)
        assert call["reserved_usd"] > call["cost_usd"]
        assert call["prompt_hash"] == report.prompt_hash and len(call["image_sha256"]) == 64
        assert call["parameters"]["max_tokens"] == 400 and call["latency_ms"] is not None
        assert '"choices"' in call["raw_response"]
    assert report.spend_usd == pytest.approx(3 * expected_cost)

    again = _openai(ws, server, images=images)
    assert (again.requests, again.cache_hits, len(server.requests)) == (0, 3, 3)
    assert len(_rows(ws, Rating)) == 9

    forced = _openai(ws, server, images=images, force=True)
    assert (forced.requests, len(server.requests)) == (3, 6)
    assert len(_rows(ws, Rating)) == 9  # replaced, not duplicated

    more = _openai(ws, server, images=images, repeats=2)
    assert (more.cache_hits, more.requests) == (3, 3)


def test_anthropic_through_tool_use(ws: Any, server: FakeVLMServer) -> None:
    report = rate_with_vlm(
        ws,
        images=[1, 2],
        attributes=ATTRS,
        provider="anthropic",
        model="test-claude",
        provider_options={"base_url": server.url},
        progress=False,
        rationale=True,
    )
    assert (report.requests, report.succeeded) == (2, 2)
    request = server.requests[0]
    assert request["path"] == "/v1/messages"
    headers = request["headers"]
    assert "sk-ant-" in headers.get("x-api-key", "") + headers.get("authorization", "")
    assert request["body"]["tool_choice"] == {"type": "tool", "name": "record_ratings"}
    assert server.images()[0][0] <= 1024
    calls = _rows(ws, VLMCall)
    assert {c["rationale"] for c in calls} == {"fake rationale"}
    assert {r["rater"] for r in _rows(ws, Rating)} == {f"vlm:anthropic/test-claude@{PROMPT_VERSION}"}


SCRIPTS = {
    "429 then ok": ([("429", 1), "ok"], "ok", 2),
    "500 then ok": (["500", "ok"], "ok", 2),
    "hang then ok": (["hang", "ok"], "ok", 2),
    "malformed twice": (["malformed", "malformed"], "failed", 2),
    "out of range, repaired": (["out_of_range", "ok"], "ok", 2),
    "out of range twice": (["out_of_range", "out_of_range"], "failed", 2),
    "refusal": (["refusal"], "refused", 1),
    "500 until retries run out": (["500", "500", "500"], "failed", 3),
}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("case", list(SCRIPTS))
def test_failures_are_retried_repaired_or_recorded(ws: Any, case: str, provider: str) -> None:
    script, status, requests = SCRIPTS[case]
    with FakeVLMServer(script=list(script), hang_s=3.0) as server:
        started = time.perf_counter()
        model = "test-model" if provider == "openai" else "test-claude"
        url = server.openai_url if provider == "openai" else server.url
        report = rate_with_vlm(
            ws,
            images=[1],
            attributes=ATTRS,
            provider=provider,
            model=model,
            provider_options={"base_url": url},
            progress=False,
            # only the hang case may time out: on a loaded machine a 0.5 s limit can also cut
            # a normal answer short, and that retry would be one request the script did not plan
            timeout=1.0 if case.startswith("hang") else 10.0,
            max_retries=2,
            retry_base_s=0.05,
        )
        seconds = time.perf_counter() - started
    assert report.requests == len(server.requests) == requests
    (call,) = _rows(ws, VLMCall)
    assert call["status"] == status
    if case == "429 then ok":
        assert seconds >= 1.0  # Retry-After was honoured
    if case == "hang then ok":
        # the timed-out attempt may have been billed: it is charged at its reservation
        assert call["cost_usd"] > call["reserved_usd"] / 2
    if status == "ok":
        assert report.succeeded == 1 and len(_rows(ws, Rating)) == len(ATTRS)
    else:
        assert report.succeeded == 0 and _rows(ws, Rating) == []
        (failure,) = _rows(ws, RunFailure)
        assert failure["image_id"] == 1 and failure["reason"] == call["error"]
        if case == "out of range twice":
            assert "coherence" in call["error"] and "after repair" in call["error"]
        if case == "refusal":
            assert "refused" in call["error"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("http", ["httpx", "aiohttp"])
def test_both_http_transports_answer_time_out_and_retry(ws: Any, provider: str, http: str) -> None:
    model = "test-model" if provider == "openai" else "test-claude"
    # a first answer shows the set-up works, so a later 401 is this call's failure, not the run's
    with FakeVLMServer(script=["ok", "hang", ("429", 0), "500", "401"], hang_s=3.0) as server:
        url = server.openai_url if provider == "openai" else server.url
        report = rate_with_vlm(
            ws,
            images=[1, 2],
            attributes=ATTRS,
            provider=provider,
            model=model,
            concurrency=1,
            provider_options={"base_url": url, "http": http},
            progress=False,
            timeout=1.0,  # the scripted hang lasts 3 s; the other answers come in milliseconds
            retry_base_s=0.05,
        )
    # image 1: answered; image 2: timed out, rate limited, server error, then refused the key
    assert report.requests == len(server.requests) == 5
    assert report.succeeded == 1 and len(report.failed) == 1 and "401" in report.failed[0][1]
    ok, failed = sorted(_rows(ws, VLMCall), key=lambda c: c["image_id"])
    assert failed["status"] == "failed" and failed["reserved_usd"] == pytest.approx(2 * ok["reserved_usd"])
    assert failed["cost_usd"] == pytest.approx(ok["reserved_usd"])  # the timed-out request is charged
    assert (ok["input_tokens"], ok["output_tokens"]) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert json.loads(ok["raw_response"])["usage"]  # the provider's own body is the raw response


def test_unknown_price_stops_before_any_request(ws: Any, server: FakeVLMServer) -> None:
    # a base URL that is not OpenAI's own is a local server, free unless priced; Anthropic's is not
    with pytest.raises(PriceUnknownError, match="anthropic/other-model"):
        rate_with_vlm(
            ws,
            provider="anthropic",
            model="other-model",
            provider_options={"base_url": server.url},
            progress=False,
        )
    assert server.requests == []
    dry = rate_with_vlm(ws, provider="openai", model="other-model", dry_run=True, progress=False)
    assert dry.max_cost_usd is None and "no price" in str(dry)


def test_a_local_server_is_free_with_a_visible_note(ws: Any, server: FakeVLMServer) -> None:
    options = {"base_url": server.openai_url}
    dry = rate_with_vlm(ws, provider="openai", model="llava", provider_options=options, dry_run=True)
    assert dry.max_cost_usd == 0 and "local OpenAI-compatible server" in str(dry)
    report = rate_with_vlm(
        ws,
        images=[1],
        attributes=ATTRS,
        provider="openai",
        model="llava",
        provider_options=options,
        progress=False,
    )
    assert (
        report.succeeded == 1
        and report.spend_usd == 0
        and "itagger vlm prices set openai llava" in str(report)
    )
    ws.set_vlm_price("openai", "llava", 1.0, 2.0)  # a workspace price wins over the default
    priced = rate_with_vlm(
        ws,
        images=[2],
        attributes=ATTRS,
        provider="openai",
        model="llava",
        provider_options=options,
        progress=False,
    )
    assert priced.spend_usd == pytest.approx((INPUT_TOKENS * 1.0 + OUTPUT_TOKENS * 2.0) / 1e6)
    assert "local" not in str(priced)


def test_dry_run_sends_nothing(ws: Any, server: FakeVLMServer) -> None:
    report = _openai(ws, server, dry_run=True, repeats=2)
    assert report.planned == 24 and report.to_send == 24 and server.requests == []
    assert 0 < report.expected_cost_usd < report.max_cost_usd
    assert "nothing was sent" in str(report)
    assert _rows(ws, VLMCall) == []


def _reservation(ws: Any, server: FakeVLMServer, model: str = "test-model") -> float:
    """What one request reserves (from a dry run: no request is sent)."""
    dry = rate_with_vlm(
        ws,
        provider="openai",
        model=model,
        attributes=ATTRS,
        images=[1],
        provider_options={"base_url": server.openai_url},
        progress=False,
        dry_run=True,
    )
    return float(dry.max_cost_usd)


def test_budget_is_never_exceeded_with_many_in_flight(ws: Any) -> None:
    from itagger_lib.vlm.ledger import set_price

    set_price(ws, "openai", "test-model", 100.0, 100.0)  # $0.105 spent per call
    with FakeVLMServer(latency=0.05) as server:
        reserved = _reservation(ws, server)
        budget = 2.5 * reserved  # two requests in flight at most, then one more per $0.105 spent
        report = _openai(ws, server, repeats=4, concurrency=16, budget_usd=budget)
    calls = _rows(ws, VLMCall)
    spent = sum(c["cost_usd"] for c in calls)
    assert spent <= budget
    assert all(c["reserved_usd"] == pytest.approx(reserved) and c["cost_usd"] == 0.105 for c in calls)
    assert 2 <= report.succeeded == len(server.requests) < 48
    # the last request is reserved when spent + reservation <= budget: the budget is used, not passed
    assert (budget - 2 * reserved) / 0.105 <= report.succeeded <= (budget - reserved) / 0.105 + 1
    assert report.skipped == 48 - report.succeeded and "budget" in (report.stopped or "")
    assert {c["status"] for c in calls} == {"ok"}
    with ws.engine.connect() as connection:
        run = connection.execute(sa.select(Run).where(Run.id == report.run_id)).mappings().one()
    assert run["n_skipped"] == report.skipped and "budget" in run["error"]

    # a rerun with more budget pays only for what is missing
    with FakeVLMServer() as server:
        rest = _openai(ws, server, repeats=4, concurrency=16)
    assert rest.cache_hits == report.succeeded and rest.requests == 48 - report.succeeded


def test_workspace_budget_holds_across_concurrent_runs(ws: Any) -> None:
    import threading

    from itagger_lib.vlm.ledger import set_price

    # gpt-4o's image formula reserves about 3.5× what the fake server bills: 3 in flight at most
    models = ("gpt-4o", "gpt-4o-2024-08-06")
    for model in models:
        set_price(ws, "openai", model, 100.0, 100.0)
    reports: list[Any] = []
    with FakeVLMServer(latency=0.05) as server:
        budget = 3.5 * _reservation(ws, server, "gpt-4o")
        ws.set_setting("vlm.budget_usd", budget)

        def run(model: str) -> None:
            reports.append(
                rate_with_vlm(
                    ws,
                    provider="openai",
                    model=model,
                    attributes=ATTRS,
                    repeats=2,
                    provider_options={"base_url": server.openai_url},
                    progress=False,
                    concurrency=8,
                )
            )

        threads = [threading.Thread(target=run, args=(m,)) for m in models]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(reports) == 2
    calls = _rows(ws, VLMCall)
    assert sum(c["cost_usd"] for c in calls) <= budget
    assert len(calls) >= 3  # the budget was used: 3 reservations fit at once, more as calls settle
    assert all("vlm.budget_usd" in (r.stopped or "") for r in reports)


def test_kill_switch_stops_new_calls(ws: Any) -> None:
    ws.set_setting("vlm.kill_switch", True)
    with FakeVLMServer() as server:
        with pytest.raises(KillSwitchError, match=r"vlm\.kill_switch"):
            _openai(ws, server)
        assert server.requests == []
    ws.set_setting("vlm.kill_switch", False)

    def flip(body: dict[str, Any]) -> None:
        ws.set_setting("vlm.kill_switch", True)

    with FakeVLMServer(decide=flip, latency=0.05) as server:
        report = _openai(ws, server, concurrency=2)
    assert 1 <= len(server.requests) <= 2
    assert report.skipped == 12 - len(server.requests) and "kill switch" in report.stopped


def test_stub_is_labelled_and_free(ws: Any) -> None:
    report = rate_with_vlm(ws, provider="stub", progress=False)
    assert report.rater == f"vlm:stub/stub@{PROMPT_VERSION}" and report.spend_usd == 0
    assert {r["rater"] for r in _rows(ws, Rating)} == {f"vlm:stub/stub@{PROMPT_VERSION}"}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("http", ["httpx", "aiohttp"])
def test_a_server_that_is_not_there_fails_fast_with_one_message(ws: Any, provider: str, http: str) -> None:
    import socket

    from itagger_lib.errors import ProviderSetupError
    from itagger_lib.vlm import ledger

    model = "test-model" if provider == "openai" else "test-claude"
    ledger.set_price(ws, provider, model, 1.0, 1.0)
    with socket.socket() as sock:  # a port nothing listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}" + ("/v1" if provider == "openai" else "")
        started = time.perf_counter()
        with pytest.raises(ProviderSetupError) as caught:
            rate_with_vlm(
                ws,
                attributes=ATTRS,
                provider=provider,
                model=model,
                provider_options={"base_url": url, "http": http},
                progress=False,
                concurrency=4,
                max_retries=5,  # would have been 12 requests and ≈ 12 s of backoff per call
            )
        seconds = time.perf_counter() - started
    reason = str(caught.value)
    assert "cannot connect" in reason and "connection refused" in reason and "check the base URL" in reason
    assert url in reason and "\n" not in reason
    assert seconds < 2.0, seconds
    calls = _rows(ws, VLMCall)
    # never sent, so never billed: only the requests already started, each tried once
    assert 1 <= len(calls) <= 4 and {c["status"] for c in calls} == {"failed"}
    assert all(c["cost_usd"] == 0 and c["attempts"] == 0 for c in calls)
    assert _rows(ws, RunFailure) == []  # one message: the run's, not one per call
    (run,) = [r for r in _rows(ws, Run) if r["kind"] == "vlm"]
    assert run["status"] == "failed" and run["error"] == reason and run["n_skipped"] >= 8


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("status", ["401", "403", "404"])
def test_a_refused_first_request_stops_the_run_without_retries(ws: Any, provider: str, status: str) -> None:
    from itagger_lib.errors import ProviderSetupError

    model = "test-model" if provider == "openai" else "test-claude"
    with FakeVLMServer(decide=lambda body: status) as server:
        url = server.openai_url if provider == "openai" else server.url
        with pytest.raises(ProviderSetupError, match=status) as caught:
            rate_with_vlm(
                ws,
                attributes=ATTRS,
                provider=provider,
                model=model,
                provider_options={"base_url": url},
                progress=False,
                concurrency=2,
            )
        assert 1 <= len(server.requests) <= 2  # the requests already in flight; no retry, no others
    hint = {"401": "API key", "403": "API key", "404": "model name"}[status]
    assert hint in str(caught.value) and KEY not in str(caught.value)


def test_dns_failure_is_a_setup_error(ws: Any) -> None:
    from itagger_lib.errors import ProviderSetupError

    started = time.perf_counter()
    with pytest.raises(ProviderSetupError, match="unknown host"):
        rate_with_vlm(
            ws,
            attributes=ATTRS,
            provider="anthropic",
            model="test-claude",
            provider_options={"base_url": "http://no-such-host.invalid"},
            progress=False,
        )
    assert time.perf_counter() - started < 10  # no backoff (the resolver's own time aside)


def test_token_limit_name_follows_the_server(ws: Any, server: FakeVLMServer) -> None:
    """OpenAI's API gets max_completion_tokens (its reasoning models refuse max_tokens);
    a compatible server at another base URL gets max_tokens; token_limit= overrides."""
    from itagger_lib.errors import ProviderError
    from itagger_lib.vlm.openai_provider import OpenAIProvider, default_token_limit

    assert default_token_limit(None) == "max_completion_tokens"
    assert default_token_limit("https://api.openai.com/v1") == "max_completion_tokens"
    assert default_token_limit("http://127.0.0.1:11434/v1") == "max_tokens"  # Ollama
    images = list(ws.images().index[:2])
    _openai(ws, server, images=images[:1])
    _openai(ws, server, images=images[1:], provider_options={"token_limit": "max_completion_tokens"})
    compatible, official = (r["body"] for r in server.requests)
    assert compatible["max_tokens"] == 400 and "max_completion_tokens" not in compatible
    assert official["max_completion_tokens"] == 400 and "max_tokens" not in official
    with pytest.raises(ProviderError, match="token_limit"):
        OpenAIProvider("m", base_url=server.openai_url, token_limit="max_length")


def test_a_reasoning_model_is_rated_with_its_parameters_and_refusals_cost_nothing(ws: Any) -> None:
    """Against a server that checks bodies as OpenAI's reasoning models do: the default
    compatible-server body is refused (a recorded failure, nothing spent); with
    max_completion_tokens and temperature 1 the images are rated."""
    images = list(ws.images().index[:2])
    with FakeVLMServer(reasoning=True) as server:
        refused = _openai(ws, server, images=images[:1], max_retries=0)
        assert refused.succeeded == 0 and len(refused.failed) == 1
        assert "max_completion_tokens" in refused.failed[0][1]
        options = {"token_limit": "max_completion_tokens"}
        hot = _openai(ws, server, images=images[:1], provider_options=options, max_retries=0)
        assert hot.succeeded == 0 and "temperature" in hot.failed[0][1]
        rated = _openai(ws, server, images=images, provider_options=options, temperature=1.0)
    assert rated.succeeded == 2 and rated.failed == []
    assert refused.spend_usd == 0 and hot.spend_usd == 0
    calls = {c["run_id"]: c for c in _rows(ws, VLMCall)}
    assert calls[refused.run_id]["cost_usd"] in (0, None) and calls[hot.run_id]["cost_usd"] in (0, None)
