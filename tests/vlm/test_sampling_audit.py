"""Sampling (random, stratified, unrated) and the self-consistency audit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Run
from itagger_lib.vlm.audit import audit_vlm, consistency
from itagger_lib.vlm.rating import rate_with_vlm
from itagger_lib.vlm.sampling import allocate, random_sample, stratified_sample


def test_allocation_is_proportional_and_complete() -> None:
    assert allocate({"a": 60, "b": 30, "c": 10}, 10) == {"a": 6, "b": 3, "c": 1}
    counts = allocate({"a": 5, "b": 5, "c": 1}, 4)
    assert sum(counts.values()) == 4 and counts["a"] >= 1 and counts["b"] >= 1
    assert allocate({"a": 2}, 10) == {"a": 2}


def test_samples_are_reproducible_from_the_seed() -> None:
    ids = list(range(100))
    assert random_sample(ids, 10, 7) == random_sample(ids, 10, 7) != random_sample(ids, 10, 8)
    strata = {i: ("low" if i < 80 else "high") for i in ids}
    chosen = stratified_sample(ids, strata, 10, 3)
    assert len(chosen) == 10 and sum(i >= 80 for i in chosen) == 2


def test_engine_samples_and_records_the_seed(ws: Any) -> None:
    report = rate_with_vlm(ws, provider="stub", sample=5, attributes=["coherence"], progress=False)
    assert report.succeeded == 5 and report.sample_seed is not None
    with ws.engine.connect() as connection:
        parameters = connection.execute(sa.select(Run.parameters).where(Run.id == report.run_id)).scalar_one()
    assert parameters["sample_seed"] == report.sample_seed
    unrated = rate_with_vlm(ws, provider="stub", sample="unrated", attributes=["coherence"], progress=False)
    assert unrated.planned == 12 - 5 and unrated.cache_hits == 0
    ids = list(ws.images().index)
    strata = {i: ("a" if n < 9 else "b") for n, i in enumerate(ids)}
    strat = rate_with_vlm(
        ws,
        provider="stub",
        attributes=["complexity"],
        progress=False,
        sample={"n": 4, "by": strata, "seed": 1},
    )
    assert strat.planned == 4 and strat.sample_seed == 1


def test_consistency_flags_collapse() -> None:
    frame = pd.DataFrame(
        {
            "image_id": [1, 1, 1, 2, 2, 2] * 2,
            "attribute": ["flat"] * 6 + ["varied"] * 6,
            "value": [4, 4, 4, 4, 4, 4, 1, 2, 3, 7, 7, 6],
        }
    )
    frame["answer"] = frame["value"]
    table = consistency(frame)
    assert table.loc["flat", "collapsed"] and table.loc["flat", "spread"] == 0
    assert not table.loc["varied", "collapsed"]
    assert table.loc["varied", "modal_share"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert table.loc["varied", "spread"] == pytest.approx(np.mean([np.std([1, 2, 3]), np.std([7, 7, 6])]))


def test_audit_repeats_are_cached(ws: Any) -> None:
    table, report = audit_vlm(
        ws, images=[1, 2, 3], k=3, provider="stub", attributes=["coherence", "setting"], progress=False
    )
    assert report.requests == 9 and set(table.index) == {"coherence", "setting"}
    assert (table["answers"] == 9).all()
    again, report = audit_vlm(
        ws, images=[1, 2, 3], k=3, provider="stub", attributes=["coherence", "setting"], progress=False
    )
    assert report.requests == 0 and again.equals(table)
