"""The same photograph at 1x and 2x, and reduced vs full decode, within documented tolerances.

Both tables are copied in docs/metrics.md ("Resolution tolerances"); they are about 2-3
times the largest difference measured on six generated scenes.
"""

from __future__ import annotations

import pytest

from itagger_lib.science import analyse_file, metric_keys
from itagger_lib.science.parallel import decode_for_science

# key: (1x vs 2x source, reduced vs full decode of the 2x source); absolute differences.
TOLERANCES = {
    "colour.lightness_mean": (0.2, 0.15),
    "colour.lightness_contrast": (0.05, 0.02),
    "colour.colourfulness": (1.5, 0.6),
    "colour.saturation_mean": (0.015, 0.006),
    "colour.hue_entropy": (0.3, 0.05),
    "colour.warmth": (0.02, 0.004),
    "complexity.luminance_entropy": (0.01, 0.002),
    "complexity.edge_density": (0.001, 0.0005),
    "complexity.compression_ratio": (0.003, 0.0005),
    "complexity.spectral_slope": (0.01, 0.001),
    "complexity.glcm_contrast": (0.05, 0.005),
    "complexity.glcm_homogeneity": (0.015, 0.0015),
    "complexity.glcm_energy": (0.006, 0.0005),
    "complexity.glcm_correlation": (0.001, 0.0001),
    "fractal.dimension": (0.005, 0.003),
    "fractal.r2": (0.001, 0.0005),
    "symmetry.left_right": (0.001, 0.0003),
    "symmetry.top_bottom": (0.001, 0.0003),
    "lines.vertical_share": (0.005, 0.003),
    "lines.horizontal_share": (0.005, 0.003),
    "lines.oblique_share": (0.005, 0.003),
    "lines.orientation_entropy": (0.05, 0.02),
    "colour_areas.green_share": (0.005, 0.001),
    "colour_areas.top_blue_grey_share": (0.002, 0.002),
    "space.clutter": (0.006, 0.003),
    "space.central_openness": (0.002, 0.002),
    "meta.working_width": (0, 0),
    "meta.working_height": (0, 0),
}


def test_every_metric_has_a_tolerance():
    assert set(TOLERANCES) == set(metric_keys())


@pytest.fixture(scope="module")
def analysed(scene_files):
    one_path, one_w, one_h = scene_files["1x"]
    two_path, two_w, two_h = scene_files["2x"]
    return {
        "1x": analyse_file(one_path, None, one_w, one_h),
        "2x": analyse_file(two_path, None, two_w, two_h),  # reduced decode at 1/2
        "2x_full": analyse_file(two_path, None),  # full decode, then area resize
    }


def test_scene_is_photo_like(analysed):
    values = analysed["1x"]
    assert 0.005 < values["complexity.edge_density"] < 0.1
    assert 1.1 < values["fractal.dimension"] < 1.8
    assert values["colour_areas.top_blue_grey_share"] > 0.1


def test_same_photograph_at_1x_and_2x(analysed):
    for key, (tolerance, _) in TOLERANCES.items():
        difference = abs(analysed["1x"][key] - analysed["2x"][key])
        assert difference <= tolerance, (key, analysed["1x"][key], analysed["2x"][key])


def test_reduced_decode_matches_full_decode_and_area_resize(analysed, scene_files):
    path, width, height = scene_files["2x"]
    assert decode_for_science(path, 1024, width, height).shape[:2] == (768, 1024)
    for key, (_, tolerance) in TOLERANCES.items():
        difference = abs(analysed["2x"][key] - analysed["2x_full"][key])
        assert difference <= tolerance, (key, analysed["2x"][key], analysed["2x_full"][key])
