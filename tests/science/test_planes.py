"""The fast shared planes and kernels against the straightforward computations they replace.

Each fast path (integer HSV masks, whole-degree hue histogram, LUT lightness, exact integer
colourfulness, flood-filled sky, pooled box counts, pruned spectrum, pair-code GLCM,
shared symmetry reduction, integral-image clutter) is compared with a direct reference,
bit for bit where the docs say "identical" and within the stated tolerance otherwise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.fft
from skimage.color import rgb2lab

from itagger_lib.science import cielab, colour, colour_areas, complexity, fractal, space, symmetry
from itagger_lib.science._hsv import saturation_value_mask
from itagger_lib.science.metrics import resolve_params
from itagger_lib.science.working import WorkingImage

LAB_TOLERANCE = 1e-3  # CIELAB units, as in test_metrics


def random_rgb(height=120, width=160, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def every_extreme_pair() -> np.ndarray:
    """Pixels covering every (max, min) pair, with the max and min in each channel order."""
    top, bottom = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    keep = bottom <= top
    top, bottom = top[keep], bottom[keep]
    middle = (top + bottom) // 2
    orders = [(top, middle, bottom), (bottom, top, middle), (middle, bottom, top), (top, top, bottom)]
    pixels = np.concatenate([np.stack(order, axis=-1) for order in orders]).astype(np.uint8)
    return pixels.reshape(-1, 256, 3)[: len(pixels) // 256]


@pytest.fixture(scope="module")
def extremes_image() -> WorkingImage:
    return WorkingImage(every_extreme_pair(), resolve_params())


@pytest.mark.parametrize(
    "min_saturation,min_value",
    [
        (0.15, 0.15),
        (0.2, 0.12),
        (0.08, 0.45),
        (0.1, 0.75),
        (3 / 20, 0.2),  # S = 3/20 is reached exactly by (max, min) = (20, 17); V = 51/255
        (0.0, 0.0),
        (1.0, 0.5),
        (0.5, 1.0),
    ],
)
@pytest.mark.parametrize("below", [False, True])
def test_saturation_value_masks_equal_inrange_on_float_hsv(extremes_image, min_saturation, min_value, below):
    image = extremes_image
    if below:
        upper_s = float(np.nextafter(np.float32(min_saturation), np.float32(-np.inf)))
        expected = cv2.inRange(image.hsv, (0.0, 0.0, min_value), (360.0, upper_s, 2.0))
    else:
        expected = cv2.inRange(image.hsv, (0.0, min_saturation, min_value), (360.0, 2.0, 2.0))
    ours = saturation_value_mask(*image.extremes, min_saturation, min_value, below=below)
    assert np.array_equal(ours, expected)


def test_s_depends_only_on_the_channel_extremes(extremes_image):
    # The premise of the integer masks: OpenCV's float S is a function of (max, min).
    image = extremes_image
    top, bottom = image.extremes
    values = np.arange(256, dtype=np.float32) * np.float32(1 / 255)
    v, v_min = values[top], values[bottom]
    expected = (v - v_min) / (v + np.float32(np.finfo(np.float32).eps))
    assert np.array_equal(image.hsv[..., 1], expected)
    assert np.array_equal(image.hsv[..., 2], v)


@pytest.mark.parametrize("seed", [0, 1])
def test_colour_area_masks_equal_the_float_hsv_masks(seed, scene_2x):
    rgb = (
        random_rgb(seed=seed) if seed == 0 else cv2.resize(scene_2x, (512, 384), interpolation=cv2.INTER_AREA)
    )
    for hue_range in ([65.0, 170.0], [65.5, 169.25]):
        params = resolve_params({"greenery_hue_range": hue_range, "sky_hue_range": hue_range})
        image = WorkingImage(rgb, params)
        expected = colour_areas.green_mask(image.hsv, hue_range, 0.2, 0.12)
        assert np.array_equal(colour_areas._green(image, params), expected)
        low, high = hue_range
        below = colour_areas._below
        blue = cv2.inRange(image.hsv, (low, 0.08, 0.45), (below(high), 2.0, 2.0))
        grey = cv2.inRange(image.hsv, (0.0, 0.0, 0.75), (360.0, below(0.1), 2.0))
        assert np.array_equal(colour_areas.blue_grey_mask(image, params), cv2.bitwise_or(blue, grey))


def test_degree_counts_equal_the_float_hue_histogram():
    image = WorkingImage(random_rgb(seed=3), resolve_params())
    mask = saturation_value_mask(*image.extremes, 0.15, 0.15)
    expected = colour.hue_histogram(image.hsv, mask, 360)
    assert np.array_equal(colour.degree_counts(image.hue_degrees, mask), expected)
    assert expected.sum() > 0


def test_top_flood_fill_equals_connected_components():
    rng = np.random.default_rng(4)
    for density in (0.3, 0.55, 0.7):
        mask = np.where(rng.random((90, 130)) < density, 255, 0).astype(np.uint8)
        top = mask[0] > 0
        _, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        expected = int(stats[np.unique(labels[0][top]), cv2.CC_STAT_AREA].sum()) if top.any() else 0
        assert colour_areas.connected_to_top(mask) == expected
    assert colour_areas.connected_to_top(np.zeros((10, 10), np.uint8)) == 0


def test_lut_lightness_matches_reference_on_every_grey_and_random_colours():
    greys = np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 3, axis=2)
    colours = random_rgb(64, 64, seed=5)
    for rgb in (greys, colours):
        ours = cielab.lightness(rgb)
        assert ours.dtype == np.float32
        assert np.abs(ours - rgb2lab(rgb)[..., 0]).max() < LAB_TOLERANCE
    mean, contrast = colour.lightness_stats(np.full((30, 40), 53.25, np.float32))
    assert (mean, contrast) == (53.25, 0.0)


def test_colourfulness_moments_are_exact():
    rgb = random_rgb(seed=6)
    r, g, b = (rgb[..., k].astype(np.int64) for k in range(3))
    n = r.size
    rg, yb2 = r - g, r + g - 2 * b
    rg_var = (n * int((rg * rg).sum()) - int(rg.sum()) ** 2) / n**2
    yb_var = (n * int((yb2 * yb2).sum()) - int(yb2.sum()) ** 2) / (4 * n**2)
    expected = math.sqrt(rg_var + yb_var) + 0.3 * math.hypot(rg.sum() / n, yb2.sum() / (2 * n))
    assert colour.colourfulness(rgb) == expected


def _box_counts_reference(mask, max_box):
    level = np.asarray(mask, bool)
    sizes, counts = [1], [int(level.sum())]
    size = 2
    while size <= max_box and max(level.shape) > 1:
        height, width = level.shape
        level = np.pad(level, ((0, height % 2), (0, width % 2)))
        level = level[0::2, 0::2] | level[1::2, 0::2] | level[0::2, 1::2] | level[1::2, 1::2]
        sizes.append(size)
        counts.append(int(level.sum()))
        size *= 2
    return sizes, counts


@pytest.mark.parametrize("shape", [(257, 301), (64, 64), (33, 7)])
def test_box_counts_equal_or_pooling(shape):
    mask = np.random.default_rng(7).random(shape) < 0.02
    sizes, counts = fractal.box_counts(mask, 128)
    expected_sizes, expected_counts = _box_counts_reference(mask, 128)
    assert sizes.tolist() == expected_sizes
    assert counts.tolist() == expected_counts
    assert fractal.box_counting_fit(mask) == fractal.box_counting_fit(mask.astype(np.uint8) * 255)


def _spectral_slope_reference(grey, min_cycles, max_frequency, n_bins=24):
    # The full-spectrum computation the pruned transform replaces.
    height, width = grey.shape
    low, high = min_cycles / min(height, width), max_frequency
    fy = scipy.fft.fftfreq(height)[:, None]
    fx = scipy.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    edges = np.geomspace(low, high, n_bins + 1)
    index = np.searchsorted(edges, radius, side="right") - 1
    index = np.where((radius >= low) & (radius < high), index, n_bins).ravel()
    counts = np.bincount(index, minlength=n_bins + 1)[:n_bins]
    centres = np.bincount(index, weights=radius.ravel(), minlength=n_bins + 1)[:n_bins] / counts
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    signal = grey.astype(np.float32)
    signal -= signal.mean(dtype=np.float64)
    amplitude = np.abs(scipy.fft.rfft2(signal * window, workers=1))
    sums = np.bincount(index, weights=amplitude.ravel(), minlength=n_bins + 1)[:n_bins]
    valid = counts > 0
    from itagger_lib.science._stats import linear_fit

    return linear_fit(np.log10(centres[valid]), np.log10(sums[valid] / counts[valid]))[0]


@pytest.mark.parametrize("shape", [(768, 1024), (301, 397)])
def test_pruned_spectrum_gives_the_full_spectrum_slope(shape, scene_2x):
    grey = cv2.cvtColor(cv2.resize(scene_2x, shape[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
    assert complexity.spectral_slope(grey, 4.0, 0.25) == _spectral_slope_reference(grey, 4.0, 0.25)


def test_glcm_pair_codes_equal_a_direct_count():
    q = complexity.quantise(random_rgb(70, 90, seed=8)[..., 0], 16)
    matrices = complexity.glcm(q, 16, 3)
    for a, angle in enumerate(complexity.GLCM_ANGLES):
        dr, dc = round(np.sin(angle) * 3), round(np.cos(angle) * 3)
        counts = np.zeros((16, 16))
        for r in range(max(0, -dr), q.shape[0] - max(0, dr)):
            for c in range(max(0, -dc), q.shape[1] - max(0, dc)):
                counts[q[r, c], q[r + dr, c + dc]] += 1
        counts += counts.T
        np.testing.assert_array_equal(matrices[:, :, a], counts / counts.sum())


def test_symmetry_shared_reduction_equals_separate_reductions():
    grey = random_rgb(768, 1024, seed=9)[..., 1]
    values = symmetry.compute(WorkingImage(np.repeat(grey[..., None], 3, axis=2), resolve_params()))
    for axis, key in ((1, "symmetry.left_right"), (0, "symmetry.top_bottom")):
        mirrored = np.ascontiguousarray(grey[:, ::-1] if axis == 1 else grey[::-1])
        small = cv2.resize(grey, (128, 96), interpolation=cv2.INTER_AREA)
        small_mirror = cv2.resize(mirrored, (128, 96), interpolation=cv2.INTER_AREA)
        difference = np.abs(small.astype(np.int16) - small_mirror.astype(np.int16))
        assert values[key] == 1.0 - float(difference.mean(dtype=np.float64)) / 255.0


def test_clutter_cells_from_the_integral_image():
    edges = np.random.default_rng(10).random((101, 157)) < 0.05
    rows = np.linspace(0, 101, 9).astype(np.intp)[:-1]
    cols = np.linspace(0, 157, 9).astype(np.intp)[:-1]
    cells = np.add.reduceat(np.add.reduceat(edges.astype(np.int32), cols, axis=1), rows, axis=0)
    from itagger_lib.science._stats import shannon_entropy

    expected = shannon_entropy(cells) / np.log2(64)
    assert space.clutter(edges, 8) == expected
    assert space.clutter(edges.astype(np.uint8) * 255, 8) == expected
    # A grid finer than the image has empty cells (version 2): 2 edge pixels, 2 cells.
    tiny = np.zeros((8, 8), bool)
    tiny[0, 0] = tiny[7, 7] = True
    assert space.clutter(tiny, 16) == pytest.approx(1 / np.log2(256))


def test_strip_planes_equal_whole_image_planes(scene_2x):
    rgb = cv2.resize(scene_2x, (1000, 701), interpolation=cv2.INTER_AREA)  # strips of 64 rows + a tail
    image = WorkingImage(rgb, resolve_params())
    assert np.array_equal(image.hue_degrees, image.hsv[..., 0].astype(np.uint16))
    assert image.saturation_mean == pytest.approx(image.hsv[..., 1].mean(dtype=np.float64), rel=1e-12)
    assert np.array_equal(image.lightness, cielab.lightness(rgb))


def test_lightness_stats_do_not_depend_on_opencv_threads():
    """A Dask worker runs OpenCV on one thread, a notebook on all: the values must be the same bits."""
    import cv2

    rng = np.random.default_rng(1)
    planes = [rng.random((600, 800), dtype=np.float32) * 100 for _ in range(5)]
    before = cv2.getNumThreads()
    try:
        cv2.setNumThreads(1)
        one = [colour.lightness_stats(p) for p in planes]
        cv2.setNumThreads(8)
        many = [colour.lightness_stats(p) for p in planes]
    finally:
        cv2.setNumThreads(before)
    assert one == many
    mean, contrast = one[0]
    assert mean == pytest.approx(float(planes[0].astype(np.float64).mean()), abs=1e-9)
    assert contrast == pytest.approx(float(planes[0].astype(np.float64).std()), rel=1e-6)
