"""Nature: shares of greenery and of sky by colour."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np

from itagger_lib.science.working import WorkingImage

__all__ = ["VERSION", "compute", "greenery_mask", "sky_share"]

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


def sky_share(hsv: np.ndarray, params: Mapping[str, Any]) -> float:
    """Share of sky-coloured pixels connected (8-neighbourhood) to the top row of the image.

    Candidates are blue (hue in ``sky_hue_range``, S >= ``sky_min_saturation``,
    V >= ``sky_min_value``) or bright and nearly colourless like an overcast sky
    (S < ``sky_grey_max_saturation``, V >= ``sky_grey_min_value``).
    """
    low, high = params["sky_hue_range"]
    blue = cv2.inRange(
        hsv,
        (float(low), float(params["sky_min_saturation"]), float(params["sky_min_value"])),
        (_below(high), 2.0, 2.0),
    )
    grey = cv2.inRange(
        hsv,
        (0.0, 0.0, float(params["sky_grey_min_value"])),
        (360.0, _below(params["sky_grey_max_saturation"]), 2.0),
    )
    candidates = cv2.bitwise_or(blue, grey)
    top = candidates[0] > 0
    if not top.any():
        return 0.0
    _, labels, stats, _ = cv2.connectedComponentsWithStats(candidates, connectivity=8, ltype=cv2.CV_32S)
    sky_labels = np.unique(labels[0][top])
    return float(stats[sky_labels, cv2.CC_STAT_AREA].sum()) / candidates.size


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
    hsv = image.hsv
    green = greenery_mask(
        hsv,
        tuple(params["greenery_hue_range"]),
        float(params["greenery_min_saturation"]),
        float(params["greenery_min_value"]),
    )
    n = image.width * image.height
    return {
        "nature.greenery_share": float(np.count_nonzero(green)) / n,
        "nature.sky_share": sky_share(hsv, params),
    }
