"""Complexity metrics: luminance entropy, edge density, compression, spectral slope, GLCM."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import scipy.fft

from itagger_lib.errors import ScienceError
from itagger_lib.science._stats import linear_fit, shannon_entropy
from itagger_lib.science.working import WorkingImage

__all__ = [
    "VERSION",
    "compression_ratio",
    "compute",
    "edge_density",
    "glcm",
    "glcm_properties",
    "luminance_entropy",
    "quantise",
    "spectral_slope",
]

VERSION = "1"
KEYS = (
    "complexity.luminance_entropy",
    "complexity.edge_density",
    "complexity.compression_ratio",
    "complexity.spectral_slope",
    "complexity.glcm_contrast",
    "complexity.glcm_homogeneity",
    "complexity.glcm_energy",
    "complexity.glcm_correlation",
)
# Offsets (row, col) for the angles 0, π/4, π/2, 3π/4 at distance d, as skimage.feature.graycomatrix
# computes them: (round(sin θ · d), round(cos θ · d)).
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)


def luminance_entropy(grey: np.ndarray) -> float:
    """Shannon entropy of the 256-bin luminance histogram.

    ``H = -sum_{k=0}^{255} p_k log2 p_k`` with ``p_k`` the share of pixels of grey level k.

    Returns
    -------
    float
        Bits, in [0, 8]: 0 for a uniform image, 8 when all 256 levels are equally frequent.

    References
    ----------
    Shannon (1948); Gonzalez & Woods, *Digital Image Processing*, 4th ed., §11.
    """
    return shannon_entropy(cv2.calcHist([grey], [0], None, [256], [0, 256]))


def edge_density(edges: np.ndarray) -> float:
    """Share of edge pixels: ``n_edge / N`` for a Canny edge map.

    Returns
    -------
    float
        In [0, 1]; typical photographs 0.02-0.15 at 1024 px.

    References
    ----------
    Canny, J. (1986). A computational approach to edge detection. IEEE TPAMI 8(6).
    """
    return float(np.count_nonzero(edges)) / edges.size


def compression_ratio(grey: np.ndarray, quality: int) -> float:
    """JPEG-compressed size of the luminance image divided by its raw size (1 byte/pixel).

    Returns
    -------
    float
        Unitless, > 0; a flat image compresses to about 0.003 at 1024 x 768, busy texture
        to 0.3 and more. Deterministic for a given libjpeg build.

    References
    ----------
    Forsythe, A., Nadal, M., Sheehy, N., Cela-Conde, C. J. & Sawey, M. (2011). Predicting
    beauty: fractal dimension and visual complexity in art. Br. J. Psychol. 102, 49-70.
    Machado, P. et al. (2015). Computerized measures of visual complexity. Acta Psychol. 160.
    """
    ok, buffer = cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ScienceError("compression_ratio: OpenCV could not JPEG-encode the working image")
    return buffer.size / grey.size


@lru_cache(maxsize=8)
def _radial_bins(
    height: int, width: int, low: float, high: float, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    fy = scipy.fft.fftfreq(height)[:, None]
    fx = scipy.fft.rfftfreq(width)[None, :]
    radius = np.sqrt(fy * fy + fx * fx)
    edges = np.geomspace(low, high, n_bins + 1)
    index = np.searchsorted(edges, radius, side="right") - 1
    inside = (radius >= low) & (radius < high)
    index = np.where(inside, index, n_bins).ravel()
    counts = np.bincount(index, minlength=n_bins + 1)[:n_bins]
    sums = np.bincount(index, weights=radius.ravel(), minlength=n_bins + 1)[:n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = sums / counts
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    for array in (index, counts, centres, window):
        array.setflags(write=False)
    return index, counts, centres, window


def spectral_slope(grey: np.ndarray, min_cycles: float, max_frequency: float, n_bins: int = 24) -> float:
    """Slope of the radially averaged amplitude spectrum on log-log axes.

    The mean-subtracted luminance is Hann-windowed, Fourier transformed, and the amplitude
    ``|F(f)|`` averaged in ``n_bins`` log-spaced rings between ``f_lo = min_cycles /
    min(H, W)`` and ``f_hi = max_frequency`` cycles per pixel. The slope α of
    ``log10 mean|F| = α log10 f + c`` is fitted by least squares over the non-empty rings.

    Returns
    -------
    float
        Unitless, usually in [-3, 0]; natural scenes are near -1 (power spectrum slope -2),
        white noise near 0, a flat image 0.

    References
    ----------
    Field, D. J. (1987). Relations between the statistics of natural images and the response
    properties of cortical cells. JOSA A 4(12). Graham, D. J. & Field, D. J. (2007).
    Statistical regularities of art images and natural scenes. Spatial Vision 21(1-2).
    """
    height, width = grey.shape
    low = float(min_cycles) / min(height, width)
    high = float(max_frequency)
    if not 0 < low < high <= 0.5:
        return 0.0
    signal = grey.astype(np.float32)
    signal -= signal.mean(dtype=np.float64)
    index, counts, centres, window = _radial_bins(height, width, low, high, n_bins)
    amplitude = np.abs(scipy.fft.rfft2(signal * window, workers=1))
    sums = np.bincount(index, weights=amplitude.ravel(), minlength=n_bins + 1)[:n_bins]
    valid = counts > 0
    means = sums[valid] / counts[valid]
    if np.any(means <= 0):
        return 0.0
    slope, _ = linear_fit(np.log10(centres[valid]), np.log10(means))
    return slope


def quantise(grey: np.ndarray, levels: int) -> np.ndarray:
    """Grey levels 0-255 mapped to ``levels`` equal bins: ``q = floor(g · levels / 256)``."""
    return ((grey.astype(np.uint16) * levels) >> 8).astype(np.uint8)


def glcm(quantised: np.ndarray, levels: int, distance: int) -> np.ndarray:
    """Symmetric, normalised grey-level co-occurrence matrices for 4 angles.

    Identical to ``skimage.feature.graycomatrix(q, [distance], [0, π/4, π/2, 3π/4], levels,
    symmetric=True, normed=True)[:, :, 0, :]``.

    Returns
    -------
    ndarray, shape (levels, levels, 4), float64
        ``P[i, j, a]`` the probability that a pixel of level i has level j at the offset of
        angle a (counted both ways).
    """
    height, width = quantised.shape
    out = np.zeros((levels, levels, len(GLCM_ANGLES)), dtype=np.float64)
    for a, angle in enumerate(GLCM_ANGLES):
        dr = round(np.sin(angle) * distance)
        dc = round(np.cos(angle) * distance)
        r0, r1 = max(0, -dr), height - max(0, dr)
        c0, c1 = max(0, -dc), width - max(0, dc)
        if r1 <= r0 or c1 <= c0:
            continue
        first = quantised[r0:r1, c0:c1]
        second = quantised[r0 + dr : r1 + dr, c0 + dc : c1 + dc]
        # Counts are exact in float32 below 2^24 pixels (a 1024 px working image has < 2^20).
        counts = cv2.calcHist([first, second], [0, 1], None, [levels, levels], [0, levels] * 2)
        matrix = counts.astype(np.float64)
        matrix += matrix.T
        total = matrix.sum()
        out[:, :, a] = matrix / total if total else matrix
    return out


def glcm_properties(matrices: np.ndarray) -> dict[str, float]:
    """Haralick properties of normalised GLCMs, averaged over angles.

    With ``P`` normalised, ``μ_i = sum i P_ij``, ``σ_i² = sum (i - μ_i)² P_ij`` (same for j):

    - contrast ``= sum P_ij (i - j)²`` in [0, (levels - 1)²]
    - homogeneity ``= sum P_ij / (1 + (i - j)²)`` in [0, 1]
    - energy ``= sqrt(sum P_ij²)`` in [0, 1]
    - correlation ``= sum P_ij (i - μ_i)(j - μ_j) / (σ_i σ_j)`` in [-1, 1]; 1 when σ = 0

    These are the definitions of ``skimage.feature.graycoprops``.

    References
    ----------
    Haralick, R. M., Shanmugam, K. & Dinstein, I. (1973). Textural features for image
    classification. IEEE Trans. SMC 3(6), 610-621.
    """
    levels = matrices.shape[0]
    i = np.arange(levels, dtype=np.float64)[:, None, None]
    j = np.arange(levels, dtype=np.float64)[None, :, None]
    contrast = (matrices * (i - j) ** 2).sum(axis=(0, 1))
    homogeneity = (matrices / (1.0 + (i - j) ** 2)).sum(axis=(0, 1))
    energy = np.sqrt((matrices**2).sum(axis=(0, 1)))
    mean_i = (i * matrices).sum(axis=(0, 1))
    mean_j = (j * matrices).sum(axis=(0, 1))
    std_i = np.sqrt((matrices * (i - mean_i) ** 2).sum(axis=(0, 1)))
    std_j = np.sqrt((matrices * (j - mean_j) ** 2).sum(axis=(0, 1)))
    cov = (matrices * (i - mean_i) * (j - mean_j)).sum(axis=(0, 1))
    flat = (std_i < 1e-15) | (std_j < 1e-15)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.where(flat, 1.0, cov / (std_i * std_j))
    return {
        "contrast": float(contrast.mean()),
        "homogeneity": float(homogeneity.mean()),
        "energy": float(energy.mean()),
        "correlation": float(correlation.mean()),
    }


def compute(image: WorkingImage) -> dict[str, float]:
    """All complexity metrics of a working image."""
    params = image.params
    grey = image.grey
    levels = int(params["glcm_levels"])
    props = glcm_properties(glcm(quantise(grey, levels), levels, int(params["glcm_distance"])))
    return {
        "complexity.luminance_entropy": luminance_entropy(grey),
        "complexity.edge_density": edge_density(image.edges),
        "complexity.compression_ratio": compression_ratio(grey, int(params["jpeg_quality"])),
        "complexity.spectral_slope": spectral_slope(
            grey, float(params["spectral_min_cycles"]), float(params["spectral_max_frequency"])
        ),
        "complexity.glcm_contrast": props["contrast"],
        "complexity.glcm_homogeneity": props["homogeneity"],
        "complexity.glcm_energy": props["energy"],
        "complexity.glcm_correlation": props["correlation"],
    }
