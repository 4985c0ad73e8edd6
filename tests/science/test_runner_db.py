"""Science runs against a real database: provenance, no recomputation, failures, resume."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from itagger_lib import Workspace
from itagger_lib.db.models import Metric
from itagger_lib.samples import write_samples
from itagger_lib.science import metric_keys


def _metric_rows(ws: Workspace) -> list[sa.Row]:
    with ws.engine.connect() as connection:
        return connection.execute(sa.select(Metric)).all()


def test_run_records_provenance_and_skips_unchanged(workspace, sample_dir: Path) -> None:
    workspace.ingest(sample_dir, progress=False)
    with ThreadPoolExecutor(2) as pool:
        first = workspace.run_science(executor=pool, progress=False)
    assert first.computed == 12 and not first.failed and first.status == "succeeded"
    rows = _metric_rows(workspace)
    keys = metric_keys()
    assert len(rows) == 12 * len(keys)
    assert {r.run_id for r in rows} == {first.run_id}
    assert {r.params_hash for r in rows} == {first.params_hash}
    assert {r.package_version for r in rows} == {__import__("itagger_lib").__version__}
    assert all(r.metric_version for r in rows)

    again = workspace.run_science(progress=False)
    assert again.computed == 0 and again.skipped == 12
    assert len(_metric_rows(workspace)) == 12 * len(keys)

    changed = workspace.run_science(params={"canny_sigma": 2.0}, progress=False)
    assert changed.computed == 12 and changed.params_hash != first.params_hash
    assert len(_metric_rows(workspace)) == 2 * 12 * len(keys)

    frame = workspace.metrics(run=first.run_id, bins=True)
    assert frame.shape[0] == 12
    assert frame.attrs["params_hash"] == first.params_hash
    assert {"composite.visual_richness", "bin.complexity.edge_density"} <= set(frame.columns)
    assert set(frame["bin.complexity.edge_density"].dropna()) <= {"low", "mid", "high"}
    details = workspace.runs("science").loc[first.run_id, "details"]
    low, high = details["cut_points"]["complexity.edge_density"]
    edge = frame["complexity.edge_density"]
    assert (frame.loc[edge < low, "bin.complexity.edge_density"] == "low").all()
    assert (frame.loc[edge > high, "bin.complexity.edge_density"] == "high").all()


def test_failing_image_is_recorded_and_the_run_goes_on(workspace, sample_dir: Path) -> None:
    workspace.ingest(sample_dir, progress=False)
    images = workspace.images()
    broken = workspace.store.path_for(images.iloc[0]["sha256"], images.iloc[0]["ext"])
    broken.unlink()
    corrupt = workspace.store.path_for(images.iloc[1]["sha256"], images.iloc[1]["ext"])
    corrupt.write_bytes(b"garbage")
    with ThreadPoolExecutor(2) as pool:
        report = workspace.run_science(executor=pool, progress=False)
    assert report.computed == 10 and len(report.failed) == 2
    assert report.status == "partial"
    failures = workspace.failures(report.run_id)
    assert set(failures["input"]) == {images.iloc[0]["sha256"], images.iloc[1]["sha256"]}
    reasons = dict(zip(failures["input"], failures["reason"]))
    for sha in (images.iloc[0]["sha256"], images.iloc[1]["sha256"]):
        assert sha in reasons[sha], reasons[sha]  # the message names the stored file


@pytest.mark.slow
def test_killed_run_resumes_where_it_stopped(database_url: str, tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    write_samples(folder, n=80, width=1024, height=768)
    store = tmp_path / "store"
    ws = Workspace(database_url=database_url, store=store)
    ws.ingest(folder, progress=False)
    env = {**os.environ, "ITAGGER_DATABASE_URL": database_url, "ITAGGER_STORE": str(store)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "itagger_lib.cli", "science", "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(_metric_rows(ws)) == 0:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    partial = len({r.image_id for r in _metric_rows(ws)})
    assert 0 < partial < 80
    report = ws.run_science(progress=False)
    assert report.computed == 80 - partial and report.skipped == partial
    rows = _metric_rows(ws)
    assert len(rows) == 80 * len(metric_keys())
    runs = ws.runs("science")
    assert "interrupted" in set(runs["status"])  # the killed run was closed as such
    ws.close()


def test_cli_science_and_metrics(tmp_path: Path, sample_dir: Path) -> None:
    home = str(tmp_path / "home")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "itagger_lib.cli", "--home", home, *args]
        return subprocess.run(command, capture_output=True, text=True, check=False)

    assert run("ingest", str(sample_dir)).returncode == 0
    science = run("science", "--workers", "2")
    assert science.returncode == 0 and "12 computed" in science.stdout, science.stderr
    bad = run("science", "-p", "no_such_parameter=1")
    assert bad.returncode == 1 and "no_such_parameter" in bad.stderr
    csv = run("metrics", "--bins", "--format", "csv")
    assert csv.returncode == 0
    header = csv.stdout.splitlines()[0].split(",")
    assert header[:2] == ["image_id", "file"]
    assert "fractal.dimension" in header and "bin.fractal.dimension" in header
    assert len(csv.stdout.splitlines()) == 13
    text = run("metrics", "--bins").stdout.splitlines()  # aligned, with file names beside ids
    assert text[0].split()[:2] == ["image_id", "file"] and len(text) == 13
    assert all(re.match(r"\s*\d+  \S+\.(jpg|png|webp|tif|tiff|bmp)\b", line) for line in text[1:]), text[1]


def test_wide_metrics_reads_the_same_values_on_every_path(workspace, sample_dir: Path) -> None:
    """On Postgres the wide table comes through COPY (psql or psycopg); it equals read_sql's."""
    import numpy as np
    import pandas as pd

    from itagger_lib.science.results import wide_metrics

    workspace.ingest(sample_dir, progress=False)
    with ThreadPoolExecutor(2) as pool:
        report = workspace.run_science(executor=pool, progress=False)
    with workspace.engine.begin() as connection:  # a missing value, stored as NULL
        connection.execute(
            sa.update(Metric).where(Metric.key == "colour.warmth", Metric.image_id == 1).values(value=None)
        )
        # and an absent row: that cell is missing in the wide table too
        connection.execute(sa.delete(Metric).where(Metric.key == "colour.hue_entropy", Metric.image_id == 2))
        long = pd.read_sql(
            sa.select(Metric.image_id, Metric.key, Metric.value).where(
                Metric.params_hash == report.params_hash
            ),
            connection,
        )
    expected = long.pivot(index="image_id", columns="key", values="value").sort_index()
    expected.columns.name = None
    wide = wide_metrics(workspace, report.params_hash)
    assert np.isnan(wide.loc[1, "colour.warmth"]) and np.isnan(wide.loc[2, "colour.hue_entropy"])
    pd.testing.assert_frame_equal(wide, expected, check_exact=True)
    some = wide_metrics(workspace, report.params_hash, keys=["colour.warmth"], image_ids=[1, 2])
    assert list(some.columns) == ["colour.warmth"] and list(some.index) == [1, 2]
