"""Batch mode against the loopback servers' batch endpoints, through the real SDKs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Rating, Run, RunFailure, VLMBatch, VLMCall
from itagger_lib.errors import KillSwitchError, ProviderSetupError
from itagger_lib.vlm.rating import rate_with_vlm
from tests.fakes.vlm_server import INPUT_TOKENS, OUTPUT_TOKENS, FakeVLMServer

ATTRS = ["coherence", "setting", "people_present"]
MODELS = {"openai": "test-model", "anthropic": "test-claude"}
# standard and batch prices (USD per million tokens) set in these tests
BATCH_IN, BATCH_OUT = 0.5, 2.0


@pytest.fixture
def priced(ws: Any) -> Any:
    for provider, model in MODELS.items():
        ws.set_vlm_price(
            provider, model, 1.0, 4.0, batch_input_per_mtok=BATCH_IN, batch_output_per_mtok=BATCH_OUT
        )
    return ws


def _url(server: FakeVLMServer, provider: str) -> str:
    return server.openai_url if provider == "openai" else server.url


def _batch(ws: Any, server: FakeVLMServer, provider: str, **kw: Any) -> Any:
    kw.setdefault("attributes", ATTRS)
    kw.setdefault("progress", False)
    kw.setdefault("retry_base_s", 0.05)
    return rate_with_vlm(
        ws,
        provider=provider,
        model=MODELS[provider],
        mode="batch",
        provider_options={"base_url": _url(server, provider)},
        **kw,
    )


def _rows(ws: Any, model: Any) -> list[dict[str, Any]]:
    with ws.engine.connect() as connection:
        return [dict(r) for r in connection.execute(sa.select(model)).mappings()]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_batch_run_rates_every_image_at_batch_prices(priced: Any, provider: str) -> None:
    ws = priced
    with FakeVLMServer() as server:
        submitted = _batch(ws, server, provider)
        assert (submitted.submitted, submitted.in_flight, submitted.succeeded) == (12, 12, 0)
        assert server.requests == [] and server.batch.submitted == 12  # nothing sent one at a time
        calls = _rows(ws, VLMCall)
        assert len(calls) == 12 and {c["status"] for c in calls} == {"reserved"}
        assert sum(c["reserved_usd"] for c in calls) == pytest.approx(submitted.max_cost_usd)
        (batch,) = server.batch.batches.values()
        # the same prompt and schema as an interactive request, matched by the calls' cache keys
        assert {cid for cid, _, _ in batch["entries"]} == {c["cache_key"] for c in calls}
        body = batch["entries"][0][2]
        assert body["model"] == MODELS[provider] and body["temperature"] == 0.0
        assert all(max(size) <= 1024 for size in server.images())

        collected = _batch(ws, server, provider)  # a rerun collects and sends nothing
        assert (collected.collected, collected.succeeded, collected.submitted) == (12, 12, 0)
        assert collected.cache_hits == 12 and server.batch.submitted == 12 and len(server.batch.batches) == 1
    calls = _rows(ws, VLMCall)
    expected = (INPUT_TOKENS * BATCH_IN + OUTPUT_TOKENS * BATCH_OUT) / 1e6
    assert {c["status"] for c in calls} == {"ok"}
    assert all(c["cost_usd"] == pytest.approx(expected) and c["batch_id"] == 1 for c in calls)
    ratings = _rows(ws, Rating)
    assert len(ratings) == 12 * len(ATTRS) and {r["rater"] for r in ratings} == {
        f"vlm:{provider}/{MODELS[provider]}"
    }
    (run,) = [r for r in _rows(ws, Run) if r["kind"] == "vlm"]
    assert run["status"] == "succeeded" and run["n_done"] == 12 and run["parameters"]["mode"] == "batch"
    (row,) = _rows(ws, VLMBatch)
    assert row["status"] == "collected" and (row["n_succeeded"], row["n_failed"]) == (12, 0)
    # the same cache keys as interactive mode: an interactive rerun asks nothing
    with FakeVLMServer() as server:
        again = rate_with_vlm(
            ws,
            provider=provider,
            model=MODELS[provider],
            attributes=ATTRS,
            provider_options={"base_url": _url(server, provider)},
            progress=False,
        )
        assert again.cache_hits == 12 and server.requests == []


CHILD = """
import sys
import itagger_lib as it
ws = it.Workspace(database_url=sys.argv[1], store=sys.argv[2])
ws.rate_with_vlm(provider=sys.argv[3], model=sys.argv[4], attributes=["coherence"], mode="batch",
                 wait_s=600, provider_options={"base_url": sys.argv[5]}, progress=False)
"""


def _submitted(ws: Any) -> bool:
    with ws.engine.connect() as connection:
        query = sa.select(sa.func.count()).where(VLMBatch.provider_batch_id.is_not(None))
        return bool(connection.execute(query).scalar_one())


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_sigkill_between_submit_and_collect_then_a_rerun_collects_and_sends_nothing(
    priced: Any, provider: str
) -> None:
    ws = priced
    root = Path(__file__).resolve().parents[2]
    # the batch ends 4 s after its creation: the child is killed while it waits for it
    with FakeVLMServer(batch_delay_s=4.0) as server:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                ws.settings.database_url,
                str(ws.store.root),
                provider,
                MODELS[provider],
                _url(server, provider),
            ],
            cwd=root,
            env={**os.environ, "PYTHONPATH": str(root)},
        )
        deadline = time.monotonic() + 120
        while not _submitted(ws) and time.monotonic() < deadline and child.poll() is None:
            time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert _submitted(ws) and server.batch.submitted == 12
        report = _batch(ws, server, provider, attributes=["coherence"], wait_s=120)
        assert report.submitted == 0 and server.batch.submitted == 12 and server.requests == []
        assert report.collected == 12 and report.in_flight == 0
    calls = _rows(ws, VLMCall)
    assert len(calls) == 12 and {c["status"] for c in calls} == {"ok"}
    assert len(_rows(ws, Rating)) == 12
    (run,) = [r for r in _rows(ws, Run) if r["kind"] == "vlm"]
    assert run["n_done"] == 12 and run["status"] in ("succeeded", "interrupted")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_partial_results_repairs_per_request_errors_and_expiry(priced: Any, provider: str) -> None:
    ws = priced
    # in job order: an invalid answer (repaired in a second batch), a refusal, a server error for
    # one request, six answers; then the window closes and the last three expire
    script = ["out_of_range", "refusal", "500"]
    with FakeVLMServer(script=script, batch_expire_after=9) as server:
        report = _batch(ws, server, provider, wait_s=120)
        assert len(server.batch.batches) == 2  # the run's batch and its repair batch
        statuses = {c["image_id"]: c for c in _rows(ws, VLMCall)}
        repaired, refused, errored = (statuses[i] for i in (1, 2, 3))
        assert repaired["status"] == "ok" and repaired["attempts"] == 2
        assert repaired["cost_usd"] == pytest.approx(
            2 * (INPUT_TOKENS * BATCH_IN + OUTPUT_TOKENS * BATCH_OUT) / 1e6
        )
        assert refused["status"] == "refused" and "refused" in refused["error"]
        assert errored["status"] == "failed" and errored["cost_usd"] == 0
        assert "500" in errored["error"] or "api_error" in errored["error"]  # Anthropic gives no status
        expired = [statuses[i] for i in (10, 11, 12)]
        assert all(c["status"] == "failed" and c["cost_usd"] == 0 for c in expired)
        assert all("expired" in c["error"] or "24 hours" in c["error"] for c in expired)
        assert report.collected == 12 and report.succeeded == 7 and len(report.failed) == 5
        failures = _rows(ws, RunFailure)
        assert len(failures) == 5 and {f["image_id"] for f in failures} == {2, 3, 10, 11, 12}
        rows = sorted(_rows(ws, VLMBatch), key=lambda r: r["id"])
        assert rows[0]["provider_status"] in ("expired", "ended") and rows[1]["repair"]
        # a rerun asks again for what failed (not billed) and only that
        server.batch.expire_after = None
        again = _batch(ws, server, provider, wait_s=120)
        assert again.submitted == 5 and again.collected == 5 and server.batch.submitted == 12 + 1 + 5
    assert len(_rows(ws, Rating)) == 12 * len(ATTRS)


def test_cancel_collects_what_ran_and_the_rest_costs_nothing(priced: Any) -> None:
    ws = priced
    with FakeVLMServer(batch_delay_s=3600) as server:
        report = _batch(ws, server, "anthropic")
        (batch_id,) = report.batches
        # an interactive run does not send what waits in a batch either
        interactive = rate_with_vlm(
            ws,
            provider="anthropic",
            model=MODELS["anthropic"],
            attributes=ATTRS,
            provider_options={"base_url": server.url},
            progress=False,
        )
        assert server.requests == [] and interactive.requests == 0
        assert "12 requests are waiting in provider batches" in str(interactive)
        table = ws.cancel_vlm_batches()
        assert table.loc[batch_id, "status"] == "cancelling"
        table = ws.vlm_batches()
        assert table.loc[batch_id, "status"] == "collected" and table.loc[batch_id, "n_failed"] == 12
        calls = _rows(ws, VLMCall)
        assert {c["status"] for c in calls} == {"failed"} and sum(c["cost_usd"] for c in calls) == 0
        assert all("cancelled" in c["error"] for c in calls)
        with pytest.raises(Exception, match="not open"):
            ws.cancel_vlm_batches([batch_id])
        server.batch.delay_s = 0
        again = _batch(ws, server, "anthropic", wait_s=60)
    assert again.submitted == 12 and again.succeeded == 12


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_the_budget_is_reserved_before_a_batch_is_sent(priced: Any, provider: str) -> None:
    ws = priced
    with FakeVLMServer() as server:
        reservation = _batch(ws, server, provider, images=[1], dry_run=True).max_cost_usd
        budget = 4.5 * reservation
        first = _batch(ws, server, provider, budget_usd=budget)
        assert first.submitted == 4 and first.skipped == 8 and "budget" in (first.stopped or "")
        assert sum(c["reserved_usd"] for c in _rows(ws, VLMCall)) <= budget
        # collected, the reservations become their (smaller) cost: the next run sends more
        second = _batch(ws, server, provider, budget_usd=budget, wait_s=60)
        assert second.collected >= 4 and second.submitted > 0
    spent = sum(c["cost_usd"] for c in _rows(ws, VLMCall) if c["status"] != "reserved")
    assert spent <= 2 * budget


def test_kill_switch_and_a_refused_key_stop_a_batch_before_anything_is_sent(priced: Any) -> None:
    ws = priced
    ws.set_setting("vlm.kill_switch", True)
    with FakeVLMServer() as server:
        with pytest.raises(KillSwitchError):
            _batch(ws, server, "openai")
        ws.set_setting("vlm.kill_switch", False)
    with FakeVLMServer() as server:
        # the upload answered 401: a set-up error, one message, the reservations released
        server.batch.route = lambda *a: (401, {}, {"error": {"message": "bad key", "type": "auth"}})  # type: ignore[method-assign]
        with pytest.raises(ProviderSetupError, match="API key"):
            _batch(ws, server, "openai")
    assert _rows(ws, VLMCall) == []
    (row,) = _rows(ws, VLMBatch)
    assert row["status"] == "failed" and "401" in row["error"]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_an_interrupted_submission_is_found_again_or_charged(priced: Any, provider: str) -> None:
    """A process killed after the provider took the batch but before the id was recorded:
    OpenAI's batch is found by its tag, Anthropic's by its time and size (unknown ids only)."""
    from itagger_lib.runs import finish_run
    from itagger_lib.vlm import ledger

    ws = priced
    with FakeVLMServer(batch_delay_s=3600) as server:
        report = _batch(ws, server, provider)
        (batch_id,) = report.batches
        # the record as the crash left it: submitting, no provider id, its run interrupted
        with ws.engine.begin() as connection:
            connection.execute(
                sa.update(VLMBatch)
                .where(VLMBatch.id == batch_id)
                .values(status="submitting", provider_batch_id=None)
            )
        finish_run(ws.engine, report.run_id, status="interrupted")
        server.batch.delay_s = 0
        again = _batch(ws, server, provider)  # found by its tag, then collected
        assert again.collected == 12 and again.submitted == 0 and server.batch.submitted == 12
        # not found at the provider: its calls are closed at their reservation
        lost = _batch(ws, server, provider, force=True, repeats=1, images=[1])
        with ws.engine.begin() as connection:
            connection.execute(
                sa.update(VLMBatch)
                .where(VLMBatch.id == lost.batches[0])
                .values(status="submitting", tag="gone")
            )
        finish_run(ws.engine, lost.run_id, status="interrupted")
        ws.vlm_batches()
    row = next(r for r in _rows(ws, VLMBatch) if r["id"] == lost.batches[0])
    assert row["status"] == "lost"
    call = next(c for c in _rows(ws, VLMCall) if c["batch_id"] == row["id"])
    assert call["status"] == "abandoned" and call["cost_usd"] == pytest.approx(call["reserved_usd"])
    assert ledger.open_keys(ws, [call["cache_key"]]) == set()


def test_cli_batch_and_batches(priced: Any, capsys: Any) -> None:
    from itagger_lib.cli import main

    ws = priced
    base = ["--database-url", ws.settings.database_url, "--store", str(ws.store.root)]
    with FakeVLMServer() as server:
        rate = ["vlm", "rate", "--provider", "openai", "--model", "test-model", "-a", "coherence"]
        assert main([*base, *rate, "--base-url", server.openai_url, "--batch"]) == 0
        assert "12 submitted" in capsys.readouterr().out
        assert main([*base, "vlm", "batches"]) == 0
        out = capsys.readouterr().out
        assert "collected" in out and "completed" in out and "openai" in out
        assert main([*base, "vlm", "batches", "--cancel", "99"]) == 1
        assert "99" in capsys.readouterr().err
    assert main([*base, "vlm", "batches", "--no-poll"]) == 0
