"""Colour metrics: CIELAB lightness, colourfulness, saturation, hue entropy, warmth."""

from __future__ import annotations

import cv2
import numpy as np

from itagger_lib.science._stats import shannon_entropy
from itagger_lib.science.working import WorkingImage

__all__ = [
    "VERSION",
    "chromatic_mask",
    "colourfulness",
    "compute",
    "hue_entropy",
    "hue_histogram",
    "lightness",
    "lightness_stats",
    "srgb_to_lab",
    "warmth",
]

VERSION = "1"
KEYS = (
    "colour.lightness_mean",
    "colour.lightness_contrast",
    "colour.colourfulness",
    "colour.saturation_mean",
    "colour.hue_entropy",
    "colour.warmth",
)


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


def lightness(rgb: np.ndarray) -> np.ndarray:
    """CIELAB lightness L* (D65) of an sRGB ``uint8`` image, float32, in [0, 100].

    ``Y = 0.212671 R_lin + 0.715160 G_lin + 0.072169 B_lin`` and ``L* = 116 f(Y) - 16``
    (see :func:`srgb_to_lab`).
    """
    luminance = _Y_WEIGHTS[0][rgb[..., 0]]
    luminance += _Y_WEIGHTS[1][rgb[..., 1]]
    luminance += _Y_WEIGHTS[2][rgb[..., 2]]
    f = np.cbrt(luminance)
    linear = luminance <= np.float32((6.0 / 29.0) ** 3)
    if linear.any():
        f[linear] = luminance[linear] * np.float32(1 / (3 * (6.0 / 29.0) ** 2)) + np.float32(4 / 29)
    f *= np.float32(116.0)
    f -= np.float32(16.0)
    return f


def lightness_stats(lightness: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of CIELAB lightness L*.

    ``mean = (1/N) sum L*``, ``contrast = sqrt((1/N) sum (L* - mean)^2)`` (RMS contrast).

    Parameters
    ----------
    lightness : ndarray, shape (H, W)
        CIELAB L*, in [0, 100].

    Returns
    -------
    mean, contrast : float
        Both in L* units; mean in [0, 100], contrast in [0, 50].

    References
    ----------
    CIE 15:2004 Colorimetry; Peli (1990), "Contrast in complex images", JOSA A 7(10).
    """
    values = lightness.astype(np.float64)
    return float(values.mean()), float(values.std())


def colourfulness(rgb: np.ndarray) -> float:
    """Colourfulness M of Hasler & Süsstrunk.

    With ``rg = R - G`` and ``yb = (R + G)/2 - B`` on 0-255 sRGB values,
    ``M = sqrt(σ_rg² + σ_yb²) + 0.3 sqrt(μ_rg² + μ_yb²)``.

    Returns
    -------
    float
        0 for any grey image; about 15 "slightly", 33 "moderately", 59 "quite",
        82 "highly", 109 "extremely colourful"; at most about 180.

    References
    ----------
    Hasler, D. & Süsstrunk, S. (2003). Measuring colourfulness in natural images.
    Proc. SPIE 5007, Human Vision and Electronic Imaging VIII, 87-95.
    """
    r, g, b = (rgb[..., k].astype(np.int16) for k in range(3))
    # Exact moments from integer histograms of rg in [-255, 255] and 2·yb in [-510, 510].
    rg_mean, rg_var = _moments(np.bincount((r - g + 255).ravel(), minlength=511), -255, 1.0)
    yb_mean, yb_var = _moments(np.bincount((r + g - 2 * b + 510).ravel(), minlength=1021), -510, 0.5)
    spread = np.sqrt(rg_var + yb_var)
    centre = np.sqrt(rg_mean**2 + yb_mean**2)
    return float(spread + 0.3 * centre)


def _moments(counts: np.ndarray, offset: int, scale: float) -> tuple[float, float]:
    values = (np.arange(counts.size, dtype=np.float64) + offset) * scale
    weights = counts / counts.sum()
    mean = float(weights @ values)
    return mean, float(weights @ (values - mean) ** 2)


def chromatic_mask(hsv: np.ndarray, min_saturation: float, min_value: float) -> np.ndarray:
    """Chromatic pixels (``uint8`` 0/255): ``S >= min_saturation`` and ``V >= min_value``.

    HSV with S and V in [0, 1].
    """
    return cv2.inRange(hsv, (0.0, float(min_saturation), float(min_value)), (360.0, 2.0, 2.0))


def hue_histogram(hsv: np.ndarray, mask: np.ndarray, bins: int) -> np.ndarray:
    """Counts of the hues of the ``mask`` pixels in ``bins`` equal sectors of [0°, 360°)."""
    counts = cv2.calcHist([hsv], [0], mask, [bins], [0.0, 360.0])
    return counts.ravel().astype(np.float64)


def hue_entropy(counts: np.ndarray) -> float:
    """Shannon entropy of the hue histogram of chromatic pixels.

    ``H = -sum p_k log2 p_k`` over the hue sectors (``hue_bins`` equal sectors of [0°, 360°),
    counting only chromatic pixels, see :func:`chromatic_mask`).

    Returns
    -------
    float
        Bits, in [0, log2(bins)]; 0 for a grey image (no chromatic pixels) or a single hue.

    References
    ----------
    Shannon, C. E. (1948). A mathematical theory of communication. Bell Syst. Tech. J. 27.
    """
    return shannon_entropy(counts)


def warmth(degree_counts: np.ndarray, n_pixels: int) -> float:
    """Balance of warm over cool chromatic pixels.

    ``warmth = (n_warm - n_cool) / N`` where warm hues are in [330°, 360°) ∪ [0°, 90°)
    (reds, oranges, yellows), cool hues in [150°, 270°) (cyans, blues) and N counts all pixels.

    Parameters
    ----------
    degree_counts : ndarray, shape (360,)
        Hue histogram of the chromatic pixels in 1° sectors.

    Returns
    -------
    float
        In [-1, 1]; 0 for a grey image; 1 when every pixel is a saturated warm colour.

    References
    ----------
    Ou, L.-C., Luo, M. R., Woodcock, A. & Wright, A. (2004). A study of colour emotion and
    colour preference. Part I. Color Res. Appl. 29(3), 232-240 (warm-cool dimension).
    """
    if n_pixels == 0:
        return 0.0
    warm = degree_counts[330:].sum() + degree_counts[:90].sum()
    cool = degree_counts[150:270].sum()
    return float(warm - cool) / n_pixels


def compute(image: WorkingImage) -> dict[str, float]:
    """All colour metrics of a working image."""
    params = image.params
    mean, contrast = lightness_stats(image.lightness)
    hsv = image.hsv
    chromatic = chromatic_mask(
        hsv, float(params["chromatic_min_saturation"]), float(params["chromatic_min_value"])
    )
    degrees = hue_histogram(hsv, chromatic, 360)
    bins = int(params["hue_bins"])
    if 360 % bins == 0:  # the same counts as a direct histogram, without a second pass
        sectors = degrees.reshape(bins, 360 // bins).sum(axis=1)
    else:
        sectors = hue_histogram(hsv, chromatic, bins)
    return {
        "colour.lightness_mean": mean,
        "colour.lightness_contrast": contrast,
        "colour.colourfulness": colourfulness(image.rgb),
        "colour.saturation_mean": float(hsv[..., 1].mean(dtype=np.float64)),
        "colour.hue_entropy": hue_entropy(sectors),
        "colour.warmth": warmth(degrees, image.width * image.height),
    }
