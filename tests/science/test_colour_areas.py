"""Colour heuristics named for what they count, their known failure cases (generated images),
old results read under the new names, and a lab's own metric run in the same pipeline."""

from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib import browse
from itagger_lib.db.models import Metric, Run
from itagger_lib.errors import ScienceError
from itagger_lib.science import plugins
from itagger_lib.science.composites import compute_composites
from itagger_lib.science.metrics import compute_metrics, metric_keys, params_hash, resolve_params
from itagger_lib.science.names import METRIC_ALIASES
from itagger_lib.science.results import metric_values, stored_cut_points

H, W = 96, 128
GREEN, TOP = "colour_areas.green_share", "colour_areas.top_blue_grey_share"


def _noisy(colour: tuple[int, int, int], sd: float = 6.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.array(colour, float) + rng.normal(0, sd, (H, W, 3)), 0, 255).astype(np.uint8)


def blue_painting() -> np.ndarray:
    return _noisy((40, 90, 200))


def water_drop() -> np.ndarray:
    """A close-up of a drop on a blue surface: no sky anywhere."""
    rgb = _noisy((70, 130, 200), 8)
    yy, xx = np.mgrid[:H, :W]
    rgb[np.hypot(yy - H / 2, xx - W / 2) < 30] = (150, 200, 240)
    rgb[np.hypot(yy - H / 2 + 12, xx - W / 2 + 10) < 6] = (250, 250, 255)  # the highlight
    return rgb


def _foliage(dark: tuple[int, int, int], bright: tuple[int, int, int], seed: int) -> np.ndarray:
    """Leaves or blades between a dark and a bright colour, with sensor noise."""
    rng = np.random.default_rng(seed)
    light = rng.uniform(0, 1, (H, W, 1))
    rgb = np.array(dark) + (np.array(bright) - np.array(dark)) * light + rng.normal(0, 10, (H, W, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def grass() -> np.ndarray:
    return _foliage((40, 100, 30), (80, 180, 60), seed=1)


def green_facade() -> np.ndarray:
    rgb = np.full((H, W, 3), (50, 140, 60), np.uint8)
    rgb[:, ::16] = (30, 90, 40)  # joints between panels
    return rgb


def white_ceiling() -> np.ndarray:
    return _noisy((235, 235, 235), 3)


def sunset() -> np.ndarray:
    rgb = np.full((H, W, 3), (60, 50, 45), np.uint8)
    rgb[: H // 2] = (250, 150, 60)  # an orange sky over a dark building
    return rgb


def sky_through_a_window() -> np.ndarray:
    rgb = np.full((H, W, 3), (150, 140, 130), np.uint8)
    rgb[30:60, 40:90] = (110, 160, 220)  # blue sky, framed by the wall
    return rgb


def autumn_trees() -> np.ndarray:
    return _foliage((180, 90, 30), (230, 130, 50), seed=2)


def sky_over_concrete() -> np.ndarray:
    rgb = np.full((H, W, 3), (150, 150, 150), np.uint8)
    rgb[:40] = (110, 160, 220)
    rgb[40:, ::12] = (90, 90, 90)
    return rgb


# (image, green_share, top_blue_grey_share, what a reader of the old names would have concluded)
FAILURES: list[tuple[Callable[[], np.ndarray], float, float]] = [
    (blue_painting, 0.0, 1.0),  # "all sky"
    (water_drop, 0.0, 1.0),  # "all sky"
    (white_ceiling, 0.0, 1.0),  # "all sky" (bright grey = overcast)
    (green_facade, 1.0, 0.0),  # "all vegetation"
    (sunset, 0.0, 0.0),  # "no sky"
    (sky_through_a_window, 0.0, 0.0),  # "no sky": not joined to the top edge
    (autumn_trees, 0.0, 0.0),  # "no vegetation"
    (grass, 1.0, 0.0),  # right about the grass, "no sky" right too
]


@pytest.mark.parametrize(("make", "green", "top"), FAILURES, ids=[f[0].__name__ for f in FAILURES])
def test_known_failure_cases(make: Callable[[], np.ndarray], green: float, top: float) -> None:
    values = compute_metrics(make(), {"families": ["colour_areas"]})
    assert values[GREEN] == pytest.approx(green, abs=0.01)
    assert values[TOP] == pytest.approx(top, abs=0.01)


def test_the_composite_once_called_naturalness_ranks_a_water_drop_above_grass() -> None:
    images = {f.__name__: f() for f in (water_drop, grass, sky_over_concrete, sunset, green_facade)}
    table = pd.DataFrame({name: compute_metrics(rgb) for name, rgb in images.items()}).T
    composite = compute_composites(table)["composite.green_blue_oblique"]
    assert composite["water_drop"] > composite["grass"] > composite["sky_over_concrete"]


def _rename_stored(ws, mapping: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """Write the results as an older version would have: keys (and run summaries) renamed."""
    with ws.engine.begin() as connection:
        for new, old in mapping.items():
            connection.execute(sa.update(Metric).where(Metric.key == new).values(key=old))
        for run_id, details in connection.execute(
            sa.select(Run.id, Run.details).where(Run.kind == "science")
        ):
            details = json.loads(details) if isinstance(details, str) else dict(details)
            for part in ("standardisation", "cut_points"):
                details[part] = {mapping.get(k, k): v for k, v in (details.get(part) or {}).items()}
            connection.execute(sa.update(Run).where(Run.id == run_id).values(details=details))


def test_old_results_are_read_under_the_new_names(workspace, sample_dir: Path) -> None:  # type: ignore[no-untyped-def]
    ws = workspace
    ws.ingest(sample_dir, progress=False)
    with cf.ThreadPoolExecutor(2) as pool:
        ws.run_science(executor=pool, progress=False)
    before = ws.metrics(bins=True)
    query = browse.Query(bins={TOP: "high"}, sort=GREEN, page_size=100)
    listed = list(browse.page(ws, query)[0]["id"])
    _rename_stored(ws, {new: old for old, new in METRIC_ALIASES.items()})
    with ws.engine.connect() as connection:
        assert (
            connection.execute(sa.select(sa.func.count()).where(Metric.key == "nature.sky_share")).scalar()
            == 12
        )
    after = ws.metrics(bins=True)
    pd.testing.assert_frame_equal(after[sorted(after.columns)], before[sorted(before.columns)])
    assert "composite.green_blue_oblique" in after and "composite.naturalness" not in after
    # the old names are accepted wherever a metric is named
    assert list(browse.page(ws, query)[0]["id"]) == listed
    old_query = browse.Query(bins={"nature.sky_share": "high"}, sort="nature.greenery_share", page_size=100)
    assert list(browse.page(ws, old_query)[0]["id"]) == listed
    pd.testing.assert_frame_equal(metric_values(ws, ["nature.sky_share"]), before[[TOP]], check_names=False)
    assert set(stored_cut_points(ws, int(after.attrs["run_id"]))) >= {
        GREEN,
        TOP,
        "composite.green_blue_oblique",
    }
    assert compute_metrics(green_facade(), {"families": ["nature"]})[GREEN] == 1.0


LAB_MODULE = '''
import numpy as np
from itagger_lib.science import metric


@metric("lab_seg", keys=("sky_share", "vegetation_share"), version="2")
def lab_seg(rgb):
    """A stand-in for a segmentation model: blue pixels in the upper half, green ones anywhere."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    upper = np.zeros(rgb.shape[:2], bool)
    upper[: rgb.shape[0] // 2] = True
    sky = (b > r + 30) & upper
    vegetation = (g > r + 30) & (g > b)
    return {"sky_share": float(sky.mean()), "vegetation_share": float(vegetation.mean())}
'''


@pytest.fixture
def lab_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A lab's package on the path, declaring its metric with an ``itagger.metrics`` entry point."""
    root = tmp_path / "site"
    root.mkdir()
    (root / "labmetrics.py").write_text(textwrap.dedent(LAB_MODULE))
    info = root / "labmetrics-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: labmetrics\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[itagger.metrics]\nlab_seg = labmetrics:lab_seg\n")
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(plugins, "_entry_points_loaded", False)
    yield root
    plugins.unregister_metric("lab_seg")
    sys.modules.pop("labmetrics", None)


def test_a_lab_metric_from_an_entry_point_runs_in_the_pipeline(
    lab_package: Path, workspace, sample_dir: Path
) -> None:  # type: ignore[no-untyped-def]
    assert "lab_seg" in plugins.registered_metrics()
    resolved = resolve_params()
    assert resolved["families"][-1] == "lab_seg"
    assert resolved["plugins"] == {
        "lab_seg": {"path": "labmetrics:lab_seg", "version": "2", "keys": ["sky_share", "vegetation_share"]}
    }
    assert metric_keys()[-2:] == ["lab_seg.sky_share", "lab_seg.vegetation_share"]
    with_lab = params_hash()
    assert with_lab != params_hash({"families": [f for f in resolved["families"] if f != "lab_seg"]})
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[: H // 4] = (40, 90, 200)  # blue: a quarter of the image, all in the upper half
    rgb[H // 2 :] = (40, 160, 40)  # green: the lower half
    values = compute_metrics(rgb)
    assert values["lab_seg.sky_share"] == 0.25 and values["lab_seg.vegetation_share"] == 0.5

    ws = workspace
    ws.ingest(sample_dir, progress=False)
    # worker processes find the metric by its import path (spawn: a fresh interpreter)
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        report = ws.run_science(executor=pool, progress=False)
    assert report.computed == 12 and not report.failed and report.params_hash == with_lab
    with ws.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Metric.run_id, Metric.params_hash, Metric.metric_version).where(
                Metric.key == "lab_seg.sky_share"
            )
        ).all()
        parameters = connection.execute(sa.select(Run.parameters).where(Run.id == report.run_id)).scalar_one()
    assert {tuple(r) for r in rows} == {(report.run_id, with_lab, "2")}  # the same provenance as a family
    assert parameters["plugins"]["lab_seg"]["path"] == "labmetrics:lab_seg"
    table = ws.metrics(bins=True)
    assert table["lab_seg.vegetation_share"].notna().all() and "bin.lab_seg.sky_share" in table
    from itagger_lib.science.parallel import analyse_file

    image = ws.images().iloc[0]
    expected = analyse_file(
        str(ws.image_path(int(image.name))), None, int(image["width"]), int(image["height"])
    )
    assert table.loc[int(image.name), "lab_seg.sky_share"] == expected["lab_seg.sky_share"]


def top_half_blue(rgb: np.ndarray) -> dict[str, float]:
    return {"share": float((rgb[: rgb.shape[0] // 2, :, 2] > 150).mean())}


def wrong_keys(rgb: np.ndarray) -> dict[str, float]:
    return {"other": 1.0}


def test_registering_a_metric_in_code_and_its_errors() -> None:
    try:
        plugin = plugins.register_metric("lab_blue", top_half_blue, keys=["share"])
        assert plugin.path == f"{top_half_blue.__module__}:top_half_blue"
        assert compute_metrics(blue_painting(), {"families": ["lab_blue"]})["lab_blue.share"] == 1.0
        with pytest.raises(ScienceError, match="already registered"):
            plugins.register_metric("lab_blue", wrong_keys, keys=["other"])
        plugins.register_metric("lab_wrong", wrong_keys, keys=["share"])
        with pytest.raises(
            ScienceError, match=r"must return a dict with the keys \['share'\], got \['other'\]"
        ):
            compute_metrics(blue_painting(), {"families": ["lab_wrong"]})
        with pytest.raises(ScienceError, match=r"unknown metric family 'lab_bleu'.*lab_blue"):
            resolve_params({"families": ["lab_bleu"]})
    finally:
        plugins.unregister_metric("lab_blue")
        plugins.unregister_metric("lab_wrong")
    with pytest.raises(ScienceError, match="not in a notebook cell, a lambda"):
        plugins.register_metric("lab_x", lambda rgb: {"a": 1.0}, keys=["a"])
    with pytest.raises(ScienceError, match="not a built-in family"):
        plugins.register_metric("nature", top_half_blue, keys=["share"])
    with pytest.raises(ScienceError, match="keys must be"):
        plugins.register_metric("lab_y", top_half_blue, keys=["a.b"])
