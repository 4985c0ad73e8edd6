"""A VLM run is a plan (what to send, at what bound) and its execution."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Run
from itagger_lib.errors import ArgumentError, PriceUnknownError, RetryableError, VLMError
from itagger_lib.vlm.anthropic_provider import AnthropicProvider
from itagger_lib.vlm.execute import execute
from itagger_lib.vlm.openai_provider import OpenAIProvider
from itagger_lib.vlm.plan import plan_rating
from itagger_lib.vlm.prompts import PROMPT_VERSION
from itagger_lib.vlm.rating import rate_with_vlm
from itagger_lib.vlm.sdk import SDKProvider


def _runs(ws: Any) -> int:
    with ws.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(Run)).scalar_one())


def test_a_plan_sends_nothing_and_its_execution_is_the_run(ws: Any) -> None:
    before = _runs(ws)
    plan = plan_rating(ws, images=list(ws.images().index[:3]), provider="stub", repeats=2)
    assert _runs(ws) == before  # planning records no run
    assert (len(plan.jobs), len(plan.pending), plan.cache_hits) == (6, 6, 0)
    assert plan.rater == f"vlm:stub/stub@{PROMPT_VERSION}" and plan.max_cost_usd == 0.0
    dry = rate_with_vlm(ws, images=list(ws.images().index[:3]), provider="stub", repeats=2, dry_run=True)
    assert (dry.planned, dry.to_send, dry.max_cost_usd) == (6, 6, plan.max_cost_usd)
    report = execute(ws, plan, progress=False)
    assert report.succeeded == 6 and report.run_id is not None and _runs(ws) == before + 1
    again = plan_rating(ws, images=list(ws.images().index[:3]), provider="stub", repeats=2)
    assert (again.cache_hits, again.pending) == (6, [])


def test_a_plan_without_a_price_is_reported_and_refused(ws: Any) -> None:
    plan = plan_rating(ws, images=[1], provider="openai", model="unpriced")
    assert plan.price is None and "no price for openai/unpriced" in (plan.price_problem or "")
    assert plan.report(dry_run=True).price_note == plan.price_problem
    with pytest.raises(PriceUnknownError, match="unpriced"):
        execute(ws, plan, progress=False)
    with pytest.raises(ArgumentError, match="repeats and concurrency must be >= 1"):
        rate_with_vlm(ws, provider="stub", concurrency=0, dry_run=True)


def test_the_sdk_providers_share_one_base_and_the_error_tree() -> None:
    assert issubclass(OpenAIProvider, SDKProvider) and issubclass(AnthropicProvider, SDKProvider)
    assert issubclass(RetryableError, VLMError)
