"""sRGB to CIELAB: the exact decoding of 8-bit sRGB, CIE XYZ (D65), L*a*b* and lightness L*.

Pure functions over ``uint8`` arrays. The working image computes its lightness plane with
:func:`lightness_from_planes`; the colour metrics (:mod:`~itagger_lib.science.colour`)
summarise it.

References
----------
CIE 15:2004 Colorimetry, §8.2.1; IEC 61966-2-1:1999 (sRGB).
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["SRGB_TO_LINEAR", "SRGB_TO_XYZ", "WHITE_D65", "lightness", "lightness_from_planes", "srgb_to_lab"]

# sRGB (IEC 61966-2-1) decoding of every 8-bit level to linear light.
_LEVELS = np.arange(256, dtype=np.float64) / 255.0
SRGB_TO_LINEAR = np.where(_LEVELS <= 0.04045, _LEVELS / 12.92, ((_LEVELS + 0.055) / 1.055) ** 2.4)
# Linear sRGB -> CIE XYZ (D65), and the D65 reference white.
SRGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
WHITE_D65 = np.array([0.95047, 1.0, 1.08883])


def _lab_f(t: np.ndarray) -> np.ndarray:
    delta = 6.0 / 29.0
    return np.where(t > delta**3, np.cbrt(t), t / (3 * delta**2) + 4.0 / 29.0)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an sRGB ``uint8`` image, float64.

    ``L* = 116 f(Y/Y_n) - 16``, ``a* = 500 (f(X/X_n) - f(Y/Y_n))``,
    ``b* = 200 (f(Y/Y_n) - f(Z/Z_n))`` with ``f(t) = t^(1/3)`` for ``t > (6/29)^3`` and
    ``t / (3 (6/29)^2) + 4/29`` otherwise; XYZ from linearised sRGB. The same constants as
    ``skimage.color.rgb2lab``.

    References
    ----------
    CIE 15:2004 Colorimetry, §8.2.1; IEC 61966-2-1:1999 (sRGB).
    """
    xyz = SRGB_TO_LINEAR[rgb] @ SRGB_TO_XYZ.T / WHITE_D65
    fx, fy, fz = (_lab_f(xyz[..., k]) for k in range(3))
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


# Per-level contributions of R, G, B to the luminance Y.
_Y_WEIGHTS = [(SRGB_TO_XYZ[1, k] * SRGB_TO_LINEAR).astype(np.float32) for k in range(3)]
_DELTA = 6.0 / 29.0


def lightness_from_planes(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIELAB lightness L* (D65) from the ``uint8`` R, G, B planes, float32, in [0, 100].

    ``Y = 0.212671 R_lin + 0.715160 G_lin + 0.072169 B_lin`` with each term read from a
    256-entry table of the exact sRGB decoding, and ``L* = 116 f(Y) - 16`` (see
    :func:`srgb_to_lab`). The cube root is ``exp(log(Y) / 3)`` with OpenCV's float ``log`` and
    ``exp``: within 2e-7 of the exact root over [(6/29)^3, 1], i.e. 2e-5 L*, well inside
    the 1e-3 tolerance against ``skimage.color.rgb2lab`` (docs/metrics.md).
    """
    luminance = cv2.add(
        cv2.add(cv2.LUT(r, _Y_WEIGHTS[0]), cv2.LUT(g, _Y_WEIGHTS[1])), cv2.LUT(b, _Y_WEIGHTS[2])
    )
    # f(t) = t^(1/3) above t0 = (6/29)^3 and its tangent there below, without a branch:
    # f(t) = max(t, t0)^(1/3) + (min(t, t0) - t0) / (3 (6/29)^2), max and min taken as
    # threshold selections (exact).
    t0 = float(np.float32(_DELTA**3))
    above = cv2.add(
        cv2.threshold(luminance, t0, 0.0, cv2.THRESH_TOZERO)[1],
        cv2.threshold(luminance, t0, t0, cv2.THRESH_BINARY_INV)[1],
    )
    below = cv2.threshold(luminance, t0, 0.0, cv2.THRESH_TRUNC)[1]
    log: np.ndarray = cv2.log(above)
    log *= np.float32(1.0 / 3.0)
    root = cv2.exp(log)
    slope = 116.0 / (3 * _DELTA**2)
    return cv2.addWeighted(root, 116.0, below, slope, -16.0 - slope * t0)


def lightness(rgb: np.ndarray) -> np.ndarray:
    """CIELAB lightness L* (D65) of an sRGB ``uint8`` image, float32, in [0, 100].

    ``Y = 0.212671 R_lin + 0.715160 G_lin + 0.072169 B_lin`` and ``L* = 116 f(Y) - 16``
    (see :func:`srgb_to_lab` and :func:`lightness_from_planes`).
    """
    return lightness_from_planes(*cv2.split(np.ascontiguousarray(rgb)))
