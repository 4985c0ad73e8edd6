"""Box counting against shapes of known dimension (±0.05)."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from itagger_lib.errors import ScienceError
from itagger_lib.science import box_counting_dimension, box_counting_fit

TOLERANCE = 0.05


@pytest.mark.parametrize(
    "end",
    [(1000, 10), (10, 1000), (1000, 1000), (1000, 300)],
    ids=["horizontal", "vertical", "diagonal", "oblique"],
)
def test_straight_line_has_dimension_one(end):
    mask = np.zeros((1024, 1024), np.uint8)
    cv2.line(mask, (10, 10), end, 1, 1)
    assert box_counting_dimension(mask > 0) == pytest.approx(1.0, abs=TOLERANCE)


def test_filled_square_has_dimension_two():
    mask = np.zeros((1024, 1024), bool)
    mask[100:900, 100:900] = True
    dimension, r2 = box_counting_fit(mask)
    assert dimension == pytest.approx(2.0, abs=TOLERANCE)
    assert r2 > 0.99


def test_sierpinski_triangle(fractal_masks):
    dimension, r2 = box_counting_fit(fractal_masks["sierpinski_triangle"])
    assert dimension == pytest.approx(math.log(3) / math.log(2), abs=TOLERANCE)
    assert r2 > 0.99


def test_sierpinski_carpet(fractal_masks):
    assert box_counting_dimension(fractal_masks["sierpinski_carpet"]) == pytest.approx(
        math.log(8) / math.log(3), abs=TOLERANCE
    )


def test_koch_curve(fractal_masks):
    assert box_counting_dimension(fractal_masks["koch_curve"]) == pytest.approx(
        math.log(4) / math.log(3), abs=TOLERANCE
    )


def test_position_in_frame_does_not_matter(fractal_masks):
    carpet = fractal_masks["sierpinski_carpet"]
    mask = np.zeros((1024, 1024), bool)
    shifted = mask.copy()
    mask[0:729, 0:729] = carpet
    shifted[201:930, 117:846] = carpet
    assert box_counting_fit(mask) == box_counting_fit(shifted)


def test_empty_mask_is_zero_and_non_2d_is_refused():
    assert box_counting_fit(np.zeros((64, 64), bool)) == (0.0, 0.0)
    with pytest.raises(ScienceError, match="2-D mask"):
        box_counting_fit(np.zeros((4, 4, 3), bool))
