"""Colour metrics: lightness statistics, colourfulness, saturation, hue entropy, warmth.

The colour-space conversions they rest on (sRGB decoding, CIELAB) are in
:mod:`~itagger_lib.science.cielab`, below the working image that caches them.
"""

from __future__ import annotations

import cv2
import numpy as np

from itagger_lib.science._hsv import saturation_value_mask
from itagger_lib.science._stats import shannon_entropy
from itagger_lib.science.working import WorkingImage

__all__ = [
    "VERSION",
    "chromatic_mask",
    "colourfulness",
    "colourfulness_from_planes",
    "compute",
    "degree_counts",
    "hue_entropy",
    "hue_histogram",
    "lightness_stats",
    "warmth",
]

VERSION = "2"
KEYS = (
    "colour.lightness_mean",
    "colour.lightness_contrast",
    "colour.colourfulness",
    "colour.saturation_mean",
    "colour.hue_entropy",
    "colour.warmth",
)


def lightness_stats(lightness: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of CIELAB lightness L*.

    ``mean = (1/N) sum L*``, ``contrast = sqrt((1/N) sum (L* - mean)^2)`` (RMS contrast),
    accumulated in double precision; the deviations are taken from the mean (two passes),
    so a uniform image has a contrast of exactly 0.

    Parameters
    ----------
    lightness : ndarray, shape (H, W)
        CIELAB L*, in [0, 100], float32.

    Returns
    -------
    mean, contrast : float
        Both in L* units; mean in [0, 100], contrast in [0, 50].

    References
    ----------
    CIE 15:2004 Colorimetry; Peli (1990), "Contrast in complex images", JOSA A 7(10).
    """
    # numpy's pairwise sums, not cv2.mean/cv2.norm: OpenCV splits those reductions over its
    # threads, so their last bit depended on the thread count (a Dask worker's vs a notebook's)
    values = np.ascontiguousarray(lightness, dtype=np.float32)
    mean = float(np.mean(values, dtype=np.float64))
    deviations = values - np.float32(mean)
    return mean, float(np.sqrt(np.mean(np.square(deviations, dtype=np.float64))))


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
    return colourfulness_from_planes(*cv2.split(np.ascontiguousarray(rgb)))


def _sum_of_squares(a: np.ndarray, b: np.ndarray) -> int:
    """``sum (a - b)^2`` over two ``uint8`` planes, exactly.

    OpenCV accumulates the integer squares in double; the result is an integer below 2^53
    with a rounding error far below 0.5, so rounding recovers it exactly.
    """
    return round(cv2.norm(a, b, cv2.NORM_L2SQR))


def colourfulness_from_planes(r: np.ndarray, g: np.ndarray, b: np.ndarray) -> float:
    """Colourfulness M (see :func:`colourfulness`) from the ``uint8`` R, G, B planes.

    The moments of ``rg = R - G`` and ``2 yb = (R - B) + (G - B)`` come from exact integer
    sums: the channel sums and ``sum (R-G)^2``, ``sum (R-B)^2``, ``sum (G-B)^2``
    (``sum (2 yb)^2 = 2 sum (R-B)^2 + 2 sum (G-B)^2 - sum (R-G)^2``); mean and variance are
    then single correctly rounded divisions of integers.
    """
    n = int(r.size)
    sum_r, sum_g, sum_b = (round(cv2.sumElems(plane)[0]) for plane in (r, g, b))
    square_rg = _sum_of_squares(r, g)
    square_yb2 = 2 * _sum_of_squares(r, b) + 2 * _sum_of_squares(g, b) - square_rg
    sum_rg = sum_r - sum_g
    sum_yb2 = sum_r + sum_g - 2 * sum_b
    rg_mean, rg_var = sum_rg / n, (n * square_rg - sum_rg * sum_rg) / (n * n)
    yb_mean, yb_var = sum_yb2 / (2 * n), (n * square_yb2 - sum_yb2 * sum_yb2) / (4 * n * n)
    spread = np.sqrt(rg_var + yb_var)
    centre = np.sqrt(rg_mean**2 + yb_mean**2)
    return float(spread + 0.3 * centre)


def chromatic_mask(hsv: np.ndarray, min_saturation: float, min_value: float) -> np.ndarray:
    """Chromatic pixels (``uint8`` 0/255): ``S >= min_saturation`` and ``V >= min_value``.

    HSV with S and V in [0, 1].
    """
    return cv2.inRange(hsv, (0.0, float(min_saturation), float(min_value)), (360.0, 2.0, 2.0))


def hue_histogram(hsv: np.ndarray, mask: np.ndarray, bins: int) -> np.ndarray:
    """Counts of the hues of the ``mask`` pixels in ``bins`` equal sectors of [0°, 360°)."""
    counts = cv2.calcHist([hsv], [0], mask, [bins], [0.0, 360.0])
    return counts.ravel().astype(np.float64)


def degree_counts(degrees: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Hue histogram in 1° sectors of the ``mask`` pixels, from whole degrees.

    ``degrees`` is ``floor(H)`` as ``uint16`` (:attr:`WorkingImage.hue_degrees`); the counts
    equal ``hue_histogram(hsv, mask, 360)``. Pixels outside ``mask`` get the code 361 and a
    hue of exactly 360° has the code 360, both outside the 360 counted sectors (as in the
    float histogram of [0°, 360°)).
    """
    codes = cv2.copyTo(degrees, mask, np.full(degrees.shape, 361, np.uint16))
    if codes.size < 1 << 24:  # float32 counts are exact below 2^24
        counts = cv2.calcHist([codes], [0], None, [362], [0, 362]).ravel()
    else:
        counts = np.bincount(codes.ravel(), minlength=362)
    return counts[:360].astype(np.float64)


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
    # The same pixels as chromatic_mask(image.hsv, ...), from the uint8 channel extremes.
    chromatic = saturation_value_mask(
        *image.extremes, float(params["chromatic_min_saturation"]), float(params["chromatic_min_value"])
    )
    degrees = degree_counts(image.hue_degrees, chromatic)
    bins = int(params["hue_bins"])
    if 360 % bins == 0:  # the same counts as a direct histogram, without a second pass
        sectors = degrees.reshape(bins, 360 // bins).sum(axis=1)
    else:
        sectors = hue_histogram(image.hue, chromatic, bins)
    return {
        "colour.lightness_mean": mean,
        "colour.lightness_contrast": contrast,
        "colour.colourfulness": colourfulness_from_planes(*image.channels),
        "colour.saturation_mean": image.saturation_mean,
        "colour.hue_entropy": hue_entropy(sectors),
        "colour.warmth": warmth(degrees, image.size),
    }
