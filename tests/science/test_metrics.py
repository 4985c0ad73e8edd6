"""Known values of the metrics, the reference conversions, and the parameter contract."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.color import rgb2lab
from skimage.feature import graycomatrix, graycoprops

from itagger_lib.errors import ScienceError
from itagger_lib.science import (
    DEFAULT_PARAMS,
    METRIC_VERSIONS,
    compute_metrics,
    family_costs,
    metric_keys,
    params_hash,
    resolve_params,
)
from itagger_lib.science.cielab import srgb_to_lab
from itagger_lib.science.colour import colourfulness
from itagger_lib.science.complexity import glcm, glcm_properties, luminance_entropy, quantise
from itagger_lib.science.working import WorkingImage

LAB_TOLERANCE = 1e-3  # CIELAB units, max abs difference vs skimage.color.rgb2lab


def random_rgb(height=96, width=128, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_all_keys_are_returned_as_floats():
    values = compute_metrics(random_rgb())
    assert list(values) == metric_keys()
    assert len(values) == 28
    assert all(type(v) is float and math.isfinite(v) for v in values.values())


def test_mirror_symmetric_image_scores_one_on_that_axis():
    blocks = random_rgb(6, 10, seed=1)
    half = np.repeat(np.repeat(blocks, 50, axis=0), 50, axis=1)
    left_right = np.concatenate([half, half[:, ::-1]], axis=1)
    top_bottom = np.concatenate([half, half[::-1]], axis=0)
    lr = compute_metrics(left_right, {"families": ["symmetry"]})
    tb = compute_metrics(top_bottom, {"families": ["symmetry"]})
    assert lr["symmetry.left_right"] == pytest.approx(1.0, abs=1e-6)
    assert tb["symmetry.top_bottom"] == pytest.approx(1.0, abs=1e-6)
    assert lr["symmetry.top_bottom"] < 0.9
    assert tb["symmetry.left_right"] < 0.9


@pytest.mark.parametrize("level", [0, 77, 128, 255])
def test_grey_image_has_no_colour(level):
    values = compute_metrics(np.full((64, 80, 3), level, np.uint8))
    assert values["colour.colourfulness"] == 0.0
    assert values["colour.hue_entropy"] == 0.0
    assert values["colour.saturation_mean"] == 0.0
    assert values["colour.warmth"] == 0.0
    assert values["complexity.luminance_entropy"] == 0.0
    assert values["complexity.edge_density"] == 0.0
    assert values["symmetry.left_right"] == 1.0


def test_uniform_luminance_histogram_has_maximal_entropy():
    grey = np.tile(np.arange(256, dtype=np.uint8), (64, 4))
    assert luminance_entropy(grey) == 8.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    assert compute_metrics(rgb)["complexity.luminance_entropy"] == 8.0


def test_colourfulness_follows_hasler_susstrunk():
    rgb = random_rgb(seed=2).astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    expected = math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean())
    assert colourfulness(random_rgb(seed=2)) == pytest.approx(expected, rel=1e-12)


def test_single_hue_and_warmth_extremes():
    red = np.zeros((32, 32, 3), np.uint8)
    red[..., 0] = 200
    blue = np.zeros((32, 32, 3), np.uint8)
    blue[..., 2] = 200
    assert compute_metrics(red)["colour.hue_entropy"] == 0.0
    assert compute_metrics(red)["colour.warmth"] == 1.0
    assert compute_metrics(blue)["colour.warmth"] == -1.0
    wheel = np.zeros((36, 10, 3), np.uint8)
    hsv = np.zeros((36, 10, 3), np.float32)
    hsv[..., 0] = (np.arange(36) * 10 + 5)[:, None]
    hsv[..., 1:] = 1.0
    import cv2

    wheel = np.round(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255).astype(np.uint8)
    assert compute_metrics(wheel)["colour.hue_entropy"] == pytest.approx(math.log2(36), abs=1e-9)


def test_cielab_matches_skimage_reference():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    rgb[0, :8] = [
        [0, 0, 0],
        [255, 255, 255],
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 0],
        [0, 255, 255],
        [255, 0, 255],
    ]
    reference = rgb2lab(rgb)  # D65, sRGB companding
    assert np.abs(srgb_to_lab(rgb) - reference).max() < LAB_TOLERANCE
    ours = WorkingImage(rgb, resolve_params()).lightness
    assert np.abs(ours - reference[..., 0]).max() < LAB_TOLERANCE
    values = compute_metrics(rgb)
    assert values["colour.lightness_mean"] == pytest.approx(reference[..., 0].mean(), abs=1e-4)
    assert values["colour.lightness_contrast"] == pytest.approx(reference[..., 0].std(), abs=1e-4)


@pytest.mark.parametrize("levels,distance", [(32, 1), (8, 2), (256, 1)])
def test_glcm_properties_equal_skimage(levels, distance):
    grey = random_rgb(80, 100, seed=4)[..., 0] // 3 + np.arange(100, dtype=np.uint8)
    q = quantise(grey, levels)
    angles = [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    reference = graycomatrix(q, [distance], angles, levels=levels, symmetric=True, normed=True)
    np.testing.assert_allclose(glcm(q, levels, distance), reference[:, :, 0, :], atol=1e-15)
    ours = glcm_properties(glcm(q, levels, distance))
    for name in ("contrast", "homogeneity", "energy", "correlation"):
        assert ours[name] == pytest.approx(graycoprops(reference, name).mean(), rel=1e-10), name


def test_glcm_in_suite_uses_quantised_grey():
    rgb = random_rgb(seed=5)
    values = compute_metrics(rgb)
    q = quantise(WorkingImage(rgb, resolve_params()).grey, 32)
    reference = graycomatrix(
        q, [1], [0, np.pi / 4, np.pi / 2, 3 * np.pi / 4], levels=32, symmetric=True, normed=True
    )
    assert values["complexity.glcm_contrast"] == pytest.approx(
        graycoprops(reference, "contrast").mean(), rel=1e-10
    )


def test_spectral_slope_of_power_law_noise():
    rng = np.random.default_rng(6)
    size = 512
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.fftfreq(size)[None, :]
    radius = np.hypot(fx, fy)
    radius[0, 0] = 1
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / radius
    field = np.real(np.fft.ifft2(spectrum))
    grey = np.clip(128 + 40 * field / field.std(), 0, 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    slope = compute_metrics(rgb, {"families": ["complexity"]})["complexity.spectral_slope"]
    assert slope == pytest.approx(-1.0, abs=0.15)


def test_lines_shares_for_stripes():
    vertical = np.zeros((128, 128, 3), np.uint8)
    vertical[:, ::16] = 255
    values = compute_metrics(vertical, {"families": ["lines"]})
    assert values["lines.vertical_share"] > 0.9
    horizontal = np.ascontiguousarray(vertical.transpose(1, 0, 2))
    values = compute_metrics(horizontal, {"families": ["lines"]})
    assert values["lines.horizontal_share"] > 0.9
    total = sum(values[f"lines.{k}_share"] for k in ("vertical", "horizontal", "oblique"))
    assert total == pytest.approx(1.0)


def test_green_and_top_blue_grey_shares():
    rgb = np.zeros((100, 100, 3), np.uint8)
    rgb[:40] = (110, 160, 220)  # blue sky on top
    rgb[40:70] = (150, 70, 50)  # brick
    rgb[70:] = (60, 140, 50)  # grass
    rgb[85:, :10] = (110, 160, 220)  # a blue car, not connected to the top
    values = compute_metrics(rgb, {"families": ["colour_areas"]})
    assert values["colour_areas.top_blue_grey_share"] == pytest.approx(0.40)
    assert values["colour_areas.green_share"] == pytest.approx(0.30 - 0.015)
    # the family's old name still selects it
    assert compute_metrics(rgb, {"families": ["nature"]}) == values


def test_working_resolution_never_upscales_and_uses_long_side():
    small = compute_metrics(random_rgb(50, 70), {"families": []})
    assert (small["meta.working_width"], small["meta.working_height"]) == (70.0, 50.0)
    big = compute_metrics(random_rgb(1200, 1600), {"families": []})
    assert (big["meta.working_width"], big["meta.working_height"]) == (1024.0, 768.0)
    custom = compute_metrics(random_rgb(1200, 1600), {"families": [], "working_long_side": 400})
    assert (custom["meta.working_width"], custom["meta.working_height"]) == (400.0, 300.0)


@pytest.mark.parametrize(
    "bad,match",
    [
        (np.zeros((10, 10), np.uint8), "shape"),
        (np.zeros((10, 10, 4), np.uint8), "shape"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        (np.zeros((4, 10, 3), np.uint8), "at least 8"),
        ([[1, 2, 3]], "numpy array"),
    ],
)
def test_invalid_input_is_refused(bad, match):
    with pytest.raises(ScienceError, match=match):
        compute_metrics(bad)


def test_params_resolution_and_hash():
    assert resolve_params() == {**DEFAULT_PARAMS, "plugins": {}}  # no lab metric registered
    with pytest.raises(ScienceError, match="'canny_hi'"):
        resolve_params({"canny_hi": 3})
    with pytest.raises(ScienceError, match=r"'glcm_levels'.*range"):
        resolve_params({"glcm_levels": 1})
    with pytest.raises(ScienceError, match="family 'texture'"):
        resolve_params({"families": ["texture"]})
    with pytest.raises(ScienceError, match="whole number"):
        resolve_params({"hue_bins": 3.5})
    assert params_hash() == params_hash({}) == params_hash({"working_long_side": 1024.0})
    assert len(params_hash()) == 64
    assert params_hash({"canny_low": 30}) != params_hash()
    assert params_hash({"families": ["colour"]}) == params_hash()
    assert set(METRIC_VERSIONS) == {
        "colour",
        "complexity",
        "fractal",
        "symmetry",
        "lines",
        "colour_areas",
        "space",
        "meta",
    }


def test_family_selection():
    values = compute_metrics(random_rgb(), {"families": ["colour", "fractal"]})
    assert list(values) == metric_keys({"families": ["colour", "fractal"]})
    assert {k.split(".")[0] for k in values} == {"colour", "fractal", "meta"}


def test_same_pixels_give_bit_identical_values():
    rgb = random_rgb(300, 400, seed=7)
    first = compute_metrics(rgb)
    second = compute_metrics(rgb.copy())
    assert first == second


def test_family_costs_reports_every_family():
    costs = family_costs(random_rgb(), repeats=1)
    assert set(costs) == {
        "resize",
        "colour",
        "complexity",
        "fractal",
        "symmetry",
        "lines",
        "colour_areas",
        "space",
        "total",
    }
    assert all(cost >= 0 for cost in costs.values())
