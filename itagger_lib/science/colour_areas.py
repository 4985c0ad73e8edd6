"""Colour areas: the share of green pixels, and of blue or bright grey pixels joined to the top edge.

Colour heuristics, not semantic segmentation: they count pixels of a colour, whatever the
object. Until version 2 this family was called ``nature`` and its keys
``nature.greenery_share`` and ``nature.sky_share`` (names that claimed vegetation and sky);
the values are the same, and results stored under the old keys are read under the new ones
(:mod:`itagger_lib.science.names`). Known failure cases, each a generated image in
``tests/science/test_colour_areas.py``:

* ``green_share`` counts any green: a green-painted facade or a green car read as 1.0, and
  so does a lawn; dry grass, autumn trees or vegetation in shade (V < 0.12) read 0;
* ``top_blue_grey_share`` counts any blue or bright grey region touching the top edge: a
  blue painting, a close-up of a water drop, a white ceiling or an overcast-grey facade
  cropped at the top read near 1.0; a sunset sky (orange) or a night sky reads 0, and so
  does sky seen only through a window that does not reach the top edge.

A lab with a segmentation model registers real sky and vegetation shares as metrics of its
own (:func:`itagger_lib.science.plugins.register_metric`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from itagger_lib.science._hsv import saturation_value_mask
from itagger_lib.science.working import WorkingImage

__all__ = [
    "KEYS",
    "VERSION",
    "blue_grey_mask",
    "compute",
    "connected_to_top",
    "green_mask",
    "top_blue_grey_share",
]

# Version 2: the family "nature" (version 1) renamed; every value is the same.
VERSION = "2"
KEYS = ("colour_areas.green_share", "colour_areas.top_blue_grey_share")


def _below(value: float) -> float:
    # cv2.inRange bounds are inclusive; the hue ranges are half-open [low, high).
    return float(np.nextafter(np.float32(value), np.float32(-np.inf)))


def green_mask(
    hsv: np.ndarray, hue_range: Sequence[float], min_saturation: float, min_value: float
) -> np.ndarray:
    """Green pixels (``uint8`` 0/255): hue in ``[low, high)`` degrees,
    ``S >= min_saturation``, ``V >= min_value`` (HSV, S and V in [0, 1])."""
    low, high = hue_range
    return cv2.inRange(hsv, (float(low), float(min_saturation), float(min_value)), (_below(high), 2.0, 2.0))


def _hue_in(image: WorkingImage, hue_range: Sequence[float]) -> np.ndarray:
    """Pixels with hue in ``[low, high)`` (``uint8`` 0/255), as ``cv2.inRange`` on the float hue."""
    low, high = (float(bound) for bound in hue_range)
    if low.is_integer() and high.is_integer():
        # For whole degrees, low <= H < high is low <= floor(H) <= high - 1.
        return cv2.inRange(image.hue_degrees, low, high - 1)
    return cv2.inRange(image.hue, low, _below(high))


def _green(image: WorkingImage, params: Mapping[str, Any]) -> np.ndarray:
    """:func:`green_mask` of ``image.hsv``, from the hue plane and the uint8 extremes."""
    saturated = saturation_value_mask(
        *image.extremes, float(params["greenery_min_saturation"]), float(params["greenery_min_value"])
    )
    return cv2.bitwise_and(saturated, _hue_in(image, params["greenery_hue_range"]))


def blue_grey_mask(image: WorkingImage, params: Mapping[str, Any]) -> np.ndarray:
    """Blue or bright grey pixels (``uint8`` 0/255), the colours of a clear or overcast sky.

    Blue (hue in ``sky_hue_range``, S >= ``sky_min_saturation``, V >= ``sky_min_value``) or
    bright and nearly colourless (S < ``sky_grey_max_saturation``, V >= ``sky_grey_min_value``).
    """
    top, bottom = image.extremes
    blue = cv2.bitwise_and(
        saturation_value_mask(
            top, bottom, float(params["sky_min_saturation"]), float(params["sky_min_value"])
        ),
        _hue_in(image, params["sky_hue_range"]),
    )
    grey = saturation_value_mask(
        top,
        bottom,
        float(params["sky_grey_max_saturation"]),
        float(params["sky_grey_min_value"]),
        below=True,
    )
    return cv2.bitwise_or(blue, grey)


def connected_to_top(mask: np.ndarray) -> int:
    """Number of pixels of ``mask`` (``uint8``, non-zero = in) 8-connected to its top row.

    One flood fill from a virtual row above the image, which touches every top-row pixel,
    reaches exactly the components that contain a top-row pixel.
    """
    if not mask[0].any():
        return 0
    canvas = cv2.threshold(mask, 0, 255, cv2.THRESH_BINARY)[1]  # 0/255, whatever mask holds
    canvas = cv2.copyMakeBorder(canvas, 1, 0, 0, 0, cv2.BORDER_CONSTANT, value=255)
    area, *_ = cv2.floodFill(canvas, None, (0, 0), 128, 0, 0, 8)
    return int(area) - canvas.shape[1]


def top_blue_grey_share(image: WorkingImage, params: Mapping[str, Any] | None = None) -> float:
    """Share of blue or bright grey pixels (:func:`blue_grey_mask`) connected
    (8-neighbourhood) to the top row of the image."""
    params = image.params if params is None else params
    candidates = blue_grey_mask(image, params)
    return connected_to_top(candidates) / candidates.size


def compute(image: WorkingImage) -> dict[str, float]:
    """Green and top-joined blue/grey shares of a working image.

    ``green_share = n_green / N`` and ``top_blue_grey_share = n_top / N``, both in [0, 1]
    (colour heuristics, not semantic segmentation: see the module docstring for what they
    get wrong).

    References
    ----------
    Li, X. et al. (2015). Assessing street-level urban greenery using Google Street View and
    a modified green view index. Urban For. Urban Green. 14(3), 675-685 (the green view
    index, which ``green_share`` approximates by colour).
    """
    params = image.params
    return {
        "colour_areas.green_share": cv2.countNonZero(_green(image, params)) / image.size,
        "colour_areas.top_blue_grey_share": top_blue_grey_share(image, params),
    }
