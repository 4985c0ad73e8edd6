"""Nature: shares of greenery and of sky by colour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from itagger_lib.science._hsv import saturation_value_mask
from itagger_lib.science.working import WorkingImage

__all__ = ["VERSION", "compute", "connected_to_top", "greenery_mask", "sky_candidates", "sky_share"]

VERSION = "1"
KEYS = ("nature.greenery_share", "nature.sky_share")


def _below(value: float) -> float:
    # cv2.inRange bounds are inclusive; the hue ranges are half-open [low, high).
    return float(np.nextafter(np.float32(value), np.float32(-np.inf)))


def greenery_mask(
    hsv: np.ndarray, hue_range: Sequence[float], min_saturation: float, min_value: float
) -> np.ndarray:
    """Vegetation-coloured pixels (``uint8`` 0/255): hue in ``[low, high)`` degrees,
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


def _greenery(image: WorkingImage, params: Mapping[str, Any]) -> np.ndarray:
    """:func:`greenery_mask` of ``image.hsv``, from the hue plane and the uint8 extremes."""
    saturated = saturation_value_mask(
        *image.extremes, float(params["greenery_min_saturation"]), float(params["greenery_min_value"])
    )
    return cv2.bitwise_and(saturated, _hue_in(image, params["greenery_hue_range"]))


def sky_candidates(image: WorkingImage, params: Mapping[str, Any]) -> np.ndarray:
    """Sky-coloured pixels (``uint8`` 0/255).

    Blue (hue in ``sky_hue_range``, S >= ``sky_min_saturation``, V >= ``sky_min_value``) or
    bright and nearly colourless like an overcast sky (S < ``sky_grey_max_saturation``,
    V >= ``sky_grey_min_value``).
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


def sky_share(image: WorkingImage, params: Mapping[str, Any] | None = None) -> float:
    """Share of sky-coloured pixels (:func:`sky_candidates`) connected (8-neighbourhood) to the
    top row of the image."""
    params = image.params if params is None else params
    candidates = sky_candidates(image, params)
    return connected_to_top(candidates) / candidates.size


def compute(image: WorkingImage) -> dict[str, float]:
    """Greenery and sky shares of a working image.

    ``greenery_share = n_green / N`` and ``sky_share = n_sky / N``, both in [0, 1]
    (colour heuristics, not semantic segmentation).

    References
    ----------
    Li, X. et al. (2015). Assessing street-level urban greenery using Google Street View and
    a modified green view index. Urban For. Urban Green. 14(3), 675-685.
    """
    params = image.params
    return {
        "nature.greenery_share": cv2.countNonZero(_greenery(image, params)) / image.size,
        "nature.sky_share": sky_share(image, params),
    }
