"""The working image: resizing to the working resolution and the planes metrics share.

Every metric is computed on a *working image* whose long side is at most
``working_long_side`` pixels (default 1024), reached with area interpolation and never by
upscaling, so that values are comparable across source sizes. Derived planes (grey,
CIELAB lightness, HSV, the Canny edge map, Sobel gradients) are computed once, on first use, and
shared by all metric families. Planes stay in ``uint8`` wherever that is exact (the channel
extremes, the edge map, the masks), because a float copy of a 1024 px image costs as much as
a metric.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from typing import Any

import cv2
import numpy as np

from itagger_lib.imaging import fit_long_side, fitted_size
from itagger_lib.science.cielab import lightness_from_planes

__all__ = ["STRIP_ROWS", "WorkingImage", "as_uint8_mask", "to_working_resolution", "working_size"]

# Float planes are computed in strips of this many rows, which stay in the CPU's cache
# between the steps of a pixel-wise computation (the values are the same row by row).
STRIP_ROWS = 64


def as_uint8_mask(mask: np.ndarray) -> np.ndarray:
    """A binary mask as contiguous ``uint8``, non-zero where ``mask`` is; no copy for a
    contiguous ``bool`` or ``uint8`` mask (OpenCV takes neither ``bool`` nor strided arrays)."""
    mask = np.asarray(mask)
    if mask.dtype == np.bool_:
        mask = mask.view(np.uint8)
    elif mask.dtype != np.uint8:
        mask = (mask != 0).view(np.uint8)
    return np.ascontiguousarray(mask)


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """``(width, height)`` of the working image for a source of ``width`` x ``height``.

    The scale is ``min(1, long_side / max(width, height))``; sides are rounded to the
    nearest integer and at least 1 (:func:`itagger_lib.imaging.fitted_size`, the rule
    :func:`~itagger_lib.imaging.fit_long_side` resizes by).
    """
    return fitted_size(width, height, long_side)


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

    @property
    def size(self) -> int:
        """Number of pixels N."""
        return self.width * self.height

    @cached_property
    def channels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The R, G and B planes, contiguous ``uint8``."""
        r, g, b = cv2.split(self.rgb)
        return r, g, b

    @cached_property
    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(max(R, G, B), min(R, G, B))`` per pixel, ``uint8``: HSV's V and its ``min``."""
        r, g, b = self.channels
        return cv2.max(cv2.max(r, g), b), cv2.min(cv2.min(r, g), b)

    @cached_property
    def grey(self) -> np.ndarray:
        """Luma Y' = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), ``uint8``."""
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)

    @cached_property
    def rgb_float(self) -> np.ndarray:
        """RGB scaled to [0, 1], ``float32``."""
        return np.multiply(self.rgb, np.float32(1 / 255), dtype=np.float32)

    def _strips(self) -> range:
        return range(0, self.height, STRIP_ROWS)

    @cached_property
    def lightness(self) -> np.ndarray:
        """CIELAB lightness L* (D65) in [0, 100], ``float32`` (exact sRGB decoding)."""
        r, g, b = self.channels
        out = np.empty((self.height, self.width), np.float32)
        for y in self._strips():
            rows = slice(y, y + STRIP_ROWS)
            out[rows] = lightness_from_planes(r[rows], g[rows], b[rows])
        return out

    @cached_property
    def hsv(self) -> np.ndarray:
        """HSV: hue in degrees [0, 360), saturation and value in [0, 1], ``float32``."""
        return cv2.cvtColor(self.rgb_float, cv2.COLOR_RGB2HSV)

    @cached_property
    def hue(self) -> np.ndarray:
        """The hue plane of :attr:`hsv` (degrees, contiguous ``float32``)."""
        return cv2.extractChannel(self.hsv, 0)

    @cached_property
    def _hue_saturation(self) -> tuple[np.ndarray, float]:
        # The float HSV strip by strip (the same values as :attr:`hsv`), keeping only what
        # the default metrics need: whole-degree hues and the sum of S.
        degrees = np.empty((self.height, self.width), np.uint16)
        total = 0.0
        for y in self._strips():
            rows = slice(y, y + STRIP_ROWS)
            scaled = np.multiply(self.rgb[rows], np.float32(1 / 255), dtype=np.float32)
            strip = cv2.cvtColor(scaled, cv2.COLOR_RGB2HSV)
            degrees[rows] = strip[..., 0]
            total += cv2.sumElems(strip)[1]
        return degrees, total

    @property
    def hue_degrees(self) -> np.ndarray:
        """``floor(H)`` of :attr:`hsv`, whole degrees 0-360 as ``uint16`` (truncation of H >= 0).

        ``H >= a`` and ``H < b`` for whole degrees a, b are ``floor(H) >= a`` and
        ``floor(H) <= b - 1``, so hue ranges with whole-degree bounds and 1° histograms need
        no float plane.
        """
        return self._hue_saturation[0]

    @property
    def saturation_mean(self) -> float:
        """Mean of the HSV saturation S over the image (accumulated in double)."""
        return self._hue_saturation[1] / self.size

    @cached_property
    def smoothed(self) -> np.ndarray:
        """Grey after a Gaussian blur of ``canny_sigma`` pixels (the edge detector's input)."""
        sigma = float(self.params["canny_sigma"])
        if sigma <= 0:
            return self.grey
        return cv2.GaussianBlur(self.grey, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)

    @cached_property
    def edge_map(self) -> np.ndarray:
        """Canny edge map, ``uint8`` 255 on edges and 0 elsewhere (L2 gradient, params' thresholds)."""
        return cv2.Canny(
            self.smoothed,
            float(self.params["canny_low"]),
            float(self.params["canny_high"]),
            L2gradient=True,
        )

    @cached_property
    def edges(self) -> np.ndarray:
        """The Canny edge map as ``bool``."""
        return self.edge_map > 0

    @cached_property
    def gradients(self) -> tuple[np.ndarray, np.ndarray]:
        """3x3 Sobel derivatives ``(gx, gy)`` of the smoothed grey image, ``int16`` (exact)."""
        gx = cv2.Sobel(self.smoothed, cv2.CV_16S, 1, 0, ksize=3)
        gy = cv2.Sobel(self.smoothed, cv2.CV_16S, 0, 1, ksize=3)
        return gx, gy
