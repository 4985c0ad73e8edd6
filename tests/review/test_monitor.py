"""Rater monitoring on small synthetic studies whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from itagger_lib.review import monitor


def study() -> pd.DataFrame:
    """Three raters × 30 images: ann and bob track a truth, cy straight-lines fast."""
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 6, size=30)
    start = pd.Timestamp("2026-01-01 09:00", tz="UTC")
    rows = []
    for rater, offset in (("ann", 0), ("bob", 1)):
        for i, value in enumerate(truth):
            noisy = value if i % 5 else min(5, value + offset)
            rows.append(
                {"rater": rater, "image_id": i, "attribute": "order", "value": float(noisy), "position": i,
                 "dwell_ms": 6000 + 100 * i, "rated_at": start + pd.Timedelta(seconds=10 * i)}
            )  # fmt: skip
    for i in range(30):
        # cy: always 3, half the images under a second, a 2-hour break after image 14
        pause = pd.Timedelta(hours=2) if i >= 15 else pd.Timedelta(0)
        rows.append(
            {"rater": "cy", "image_id": i, "attribute": "order", "value": 3.0, "position": i,
             "dwell_ms": 800 if i % 2 else 4000, "rated_at": start + pause + pd.Timedelta(seconds=5 * i)}
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_rater_progress_counts_and_throughput() -> None:
    table = monitor.rater_progress(study(), assigned={"ann": 60, "bob": 30, "cy": 30}).set_index("rater")
    assert table.loc["ann", "n_images"] == 30
    assert table.loc["ann", "progress"] == 0.5
    assert table.loc["ann", "images_per_hour"] == pytest.approx(360.0)  # one image per 10 s
    assert table.loc["cy", "n_sessions"] == 2
    assert table.loc["cy", "active_hours"] == pytest.approx(28 * 5 / 3600)


def test_dwell_summary_quantiles() -> None:
    table = monitor.dwell_summary(study()).set_index("rater")
    assert table.loc["ann", "median"] == pytest.approx(6000 + 100 * 14.5)
    assert table.loc["cy", "p10"] == 800


def test_fast_answers_flags_the_hasty_rater() -> None:
    table = monitor.fast_answers(study()).set_index("rater")
    assert table.loc["cy", "fast_share"] == 0.5
    assert bool(table.loc["cy", "flagged"]) and not bool(table.loc["ann", "flagged"])


def test_straight_lining_detects_runs() -> None:
    table = monitor.straight_lining(study()).set_index("rater")
    assert table.loc["cy", "longest_run"] == 30
    assert bool(table.loc["cy", "flagged"]) and not bool(table.loc["ann", "flagged"])


def test_consensus_agreement_and_flags() -> None:
    table = monitor.consensus_agreement(study(), {"order": "ordinal"}).set_index("rater")
    assert table.loc["ann", "alpha"] > 0.8
    assert np.isnan(table.loc["cy", "alpha"]) or table.loc["cy", "alpha"] < 0.4
    flags = monitor.rater_flags(study(), {"order": "ordinal"}).set_index("rater")["flags"]
    assert flags["ann"] == "" and flags["bob"] == ""
    assert flags["cy"].startswith("fast, straight_lining:order")
