"""Exact saturation and value thresholds of OpenCV's float HSV, evaluated on ``uint8`` planes.

:attr:`WorkingImage.hsv` is ``cv2.cvtColor(rgb / 255, COLOR_RGB2HSV)`` in ``float32``. Its
value V is the float of ``max(R, G, B)`` and its saturation ``S = (V - V_min) / (V + ε)``
(``ε`` = FLT_EPSILON) depends only on ``max`` and ``min`` of the channels. So every mask
"S >= s and V >= v" (or "S < s") that ``cv2.inRange`` computes on the float planes is a
function of the two ``uint8`` extremes, and because S falls as ``min`` rises for a fixed
``max``, it is "``max`` in an allowed set and ``min`` <= a limit that depends on ``max``":
two 256-entry lookups and a comparison, bit-identical to the float masks
(``tests/science/test_planes.py`` checks every ``(max, min)`` pair).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

__all__ = ["saturation_value_mask"]

_FLT_EPSILON = np.float32(np.finfo(np.float32).eps)
# V of each 8-bit level, computed exactly as WorkingImage.rgb_float computes it.
_VALUES = np.arange(256, dtype=np.float32) * np.float32(1 / 255)


def _saturation_row(top: int) -> np.ndarray:
    """Float32 S for ``max = top`` and every ``min`` in 0..top (OpenCV's formula)."""
    v = _VALUES[top]
    return (v - _VALUES[: top + 1]) / (v + _FLT_EPSILON)


@lru_cache(maxsize=32)
def _tables(min_saturation: float, min_value: float, below: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """``(bounds, allowed)``: 256-entry ``uint8`` lookups of ``max`` for the mask.

    Without ``below`` the mask is ``S >= min_saturation and V >= min_value``; with ``below``
    it is ``S < min_saturation and V >= min_value``. For each ``max`` the mins with
    ``S >= min_saturation`` are ``0 .. count - 1`` (S does not rise with ``min``), so a pixel
    is in the mask when ``min < bounds[max]`` (without ``below``) or ``min > bounds[max]``
    (with ``below``); a ``max`` whose V fails gets a bound no ``min`` passes. Where one bound
    cannot say it in ``uint8`` (only for saturation thresholds of 0 or 1), ``allowed`` (0/255
    per ``max``) is returned too and the bound is only the ``min`` test. Bounds compare in
    float32, as ``cv2.inRange`` converts them.
    """
    s_bound = np.float32(min_saturation)
    v_bound = np.float32(min_value)
    counts = np.array([np.count_nonzero(_saturation_row(top) >= s_bound) for top in range(256)])
    levels = np.arange(256)
    if below:  # min >= count; no min qualifies when count == top + 1
        ok = (v_bound <= _VALUES) & (counts <= levels)
        single = bool(np.all(counts[ok] >= 1))
        bounds = np.where(ok, counts - 1, 255) if single else np.minimum(counts, 255)
    else:  # min <= count - 1; no min qualifies when count == 0
        ok = (v_bound <= _VALUES) & (counts > 0)
        single = bool(np.all(counts[ok] <= 255))
        bounds = np.where(ok, counts, 0) if single else np.maximum(counts - 1, 0)
    bounds_u8 = bounds.astype(np.uint8)
    bounds_u8.setflags(write=False)
    if single:
        return bounds_u8, None
    allowed = np.where(ok, 255, 0).astype(np.uint8)
    allowed.setflags(write=False)
    return bounds_u8, allowed


def saturation_value_mask(
    top: np.ndarray, bottom: np.ndarray, min_saturation: float, min_value: float, *, below: bool = False
) -> np.ndarray:
    """Pixels (``uint8`` 0/255) with ``S >= min_saturation`` (``S < min_saturation`` when
    ``below``) and ``V >= min_value``, from the channel extremes ``top = max(R, G, B)`` and
    ``bottom = min(R, G, B)`` (``uint8`` planes); HSV S and V in [0, 1].

    Equal, pixel for pixel, to ``cv2.inRange`` on ``WorkingImage.hsv`` with the same bounds.
    """
    bounds, allowed = _tables(float(min_saturation), float(min_value), below)
    if allowed is None:
        return cv2.compare(bottom, cv2.LUT(top, bounds), cv2.CMP_GT if below else cv2.CMP_LT)
    inside = cv2.compare(bottom, cv2.LUT(top, bounds), cv2.CMP_GE if below else cv2.CMP_LE)
    return cv2.bitwise_and(inside, cv2.LUT(top, allowed))
