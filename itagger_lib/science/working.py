"""The working image: resizing to the working resolution and the planes metrics share.

Every metric is computed on a *working image* whose long side is at most
``working_long_side`` pixels (default 1024), reached with area interpolation and never by
upscaling, so that values are comparable across source sizes. Derived planes (grey,
CIELAB lightness, HSV, the Canny edge map, Sobel gradients) are computed once, on first use, and
shared by all metric families.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from itagger_lib.imaging import fit_long_side

__all__ = ["WorkingImage", "to_working_resolution", "working_size"]


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` of the working image for a source of ``width`` x ``height``.

    The scale is ``min(1, long_side / max(width, height))``; sides are rounded to the
    nearest integer and at least 1 (the rule :func:`itagger_lib.imaging.fit_long_side` uses).
    """
    scale = long_side / max(width, height)
    if scale >= 1:
        return width, height
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_working_resolution(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Resize ``rgb`` to a long side of at most ``long_side`` (``cv2.INTER_AREA``, never up)."""
    return fit_long_side(rgb, long_side)


class WorkingImage:
    """An RGB ``uint8`` working image and the planes computed from it on demand.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        Already at working resolution.
    params : mapping
        Resolved parameters (see :data:`itagger_lib.science.metrics.DEFAULT_PARAMS`).
    """

    def __init__(self, rgb: np.ndarray, params: Mapping[str, Any]) -> None:
        self.rgb = rgb
        self.params = params
        self.height, self.width = rgb.shape[:2]

    @cached_property
    def grey(self) -> np.ndarray:
        """Luma Y' = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), ``uint8``."""
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)

    @cached_property
    def rgb_float(self) -> np.ndarray:
        """RGB scaled to [0, 1], ``float32``."""
        return self.rgb.astype(np.float32) * np.float32(1 / 255)

    @cached_property
    def lightness(self) -> np.ndarray:
        """CIELAB lightness L* (D65) in [0, 100], ``float32`` (exact sRGB decoding)."""
        from itagger_lib.science.colour import lightness

        return lightness(self.rgb)

    @cached_property
    def hsv(self) -> np.ndarray:
        """HSV: hue in degrees [0, 360), saturation and value in [0, 1], ``float32``."""
        return cv2.cvtColor(self.rgb_float, cv2.COLOR_RGB2HSV)

    @cached_property
    def smoothed(self) -> np.ndarray:
        """Grey after a Gaussian blur of ``canny_sigma`` pixels (the edge detector's input)."""
        sigma = float(self.params["canny_sigma"])
        if sigma <= 0:
            return self.grey
        return cv2.GaussianBlur(self.grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    @cached_property
    def edges(self) -> np.ndarray:
        """Canny edge map (``bool``) with L2 gradient and hysteresis thresholds from params."""
        canny = cv2.Canny(
            self.smoothed,
            float(self.params["canny_low"]),
            float(self.params["canny_high"]),
            L2gradient=True,
        )
        return canny > 0

    @cached_property
    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """3x3 Sobel derivatives ``(gx, gy)`` of the smoothed grey image, ``int16`` (exact)."""
        gx = cv2.Sobel(self.smoothed, cv2.CV_16S, 1, 0, ksize=3)
        gy = cv2.Sobel(self.smoothed, cv2.CV_16S, 0, 1, ksize=3)
        return gx, gy
