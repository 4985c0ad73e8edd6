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
def _spectral_plan(
    height: int, width: int, low: float, high: float, n_bins: int
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Which part of the half spectrum (``rfft2`` layout) the rings use, and their bins.

    Only frequencies with ``|f_x|, |f_y| < high`` can lie in a ring, so the transform keeps
    the first ``columns`` columns of the row transforms and, of the column transforms, the
    ``rows``; ``positions`` are the in-ring entries of that block in row-major order (the
    order a full-spectrum ``np.bincount`` visits them) and ``index`` their ring.
    """
    fy = scipy.fft.fftfreq(height)
    fx = scipy.fft.rfftfreq(width)
    columns = int(np.count_nonzero(fx < high))
    rows = np.flatnonzero(np.abs(fy) < high)
    radius = np.sqrt(fy[rows, None] ** 2 + fx[None, :columns] ** 2)
    edges = np.geomspace(low, high, n_bins + 1)
    inside = ((radius >= low) & (radius < high)).ravel()
    positions = np.flatnonzero(inside)
    index = np.searchsorted(edges, radius.ravel()[positions], side="right") - 1
    counts = np.bincount(index, minlength=n_bins)[:n_bins]
    sums = np.bincount(index, weights=radius.ravel()[positions], minlength=n_bins)[:n_bins]
    with np.errstate(invalid="ignore", divide="ignore"):
        centres = sums / counts
    window = np.outer(np.hanning(height), np.hanning(width)).astype(np.float32)
    for array in (rows, positions, index, counts, centres, window):
        array.setflags(write=False)
    return columns, rows, positions, index, counts, centres, window


def spectral_slope(grey: np.ndarray, min_cycles: float, max_frequency: float, n_bins: int = 24) -> float:
    """Slope of the radially averaged amplitude spectrum on log-log axes.

    The mean-subtracted luminance is Hann-windowed, Fourier transformed, and the amplitude
    ``|F(f)|`` averaged in ``n_bins`` log-spaced rings between ``f_lo = min_cycles /
    min(H, W)`` and ``f_hi = max_frequency`` cycles per pixel. The slope α of
    ``log10 mean|F| = α log10 f + c`` is fitted by least squares over the non-empty rings.
    The transform is computed only where the rings are (rows, then the low-frequency
    columns); the values are those of the full ``scipy.fft.rfft2``.

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
    columns, rows, positions, index, counts, centres, window = _spectral_plan(
        height, width, low, high, n_bins
    )
    signal = grey.astype(np.float32)
    signal -= np.float64(cv2.sumElems(grey)[0] / grey.size)  # exact: an integer sum over N
    signal *= window
    spectrum = scipy.fft.rfft(signal, axis=1, workers=1)[:, :columns]
    spectrum = scipy.fft.fft(spectrum, axis=0, workers=1)[rows]
    amplitude = np.abs(spectrum.ravel()[positions])
    sums = np.bincount(index, weights=amplitude, minlength=n_bins)[:n_bins]
    valid = counts > 0
    means = sums[valid] / counts[valid]
    if np.any(means <= 0):
        return 0.0
    slope, _ = linear_fit(np.log10(centres[valid]), np.log10(means))
    return slope


@lru_cache(maxsize=16)
def _quantise_table(levels: int) -> np.ndarray:
    table = ((np.arange(256, dtype=np.uint16) * levels) >> 8).astype(np.uint8)
    table.setflags(write=False)
    return table


def quantise(grey: np.ndarray, levels: int) -> np.ndarray:
    """Grey levels 0-255 mapped to ``levels`` equal bins: ``q = floor(g · levels / 256)``."""
    return cv2.LUT(grey, _quantise_table(int(levels)))


@lru_cache(maxsize=32)
def _pair_tables(levels: int, from_grey: bool) -> tuple[np.ndarray, np.ndarray]:
    """``uint16`` lookups giving ``i · levels`` and ``j`` for the pair code ``i · levels + j``,
    indexed by the quantised level or, with ``from_grey``, straight by the grey level."""
    level = np.arange(256, dtype=np.uint16)
    if from_grey:
        level = _quantise_table(levels).astype(np.uint16)
    first = np.where(level < levels, level * levels, 0).astype(np.uint16)
    second = np.where(level < levels, level, 0).astype(np.uint16)
    first.setflags(write=False)
    second.setflags(write=False)
    return first, second


def _pair_counts(codes: np.ndarray, n_codes: int) -> np.ndarray:
    # calcHist counts in float32, exact below 2^24 pairs; np.bincount beyond.
    if codes.size < 1 << 24:
        return cv2.calcHist([codes], [0], None, [n_codes], [0, n_codes]).ravel().astype(np.float64)
    return np.bincount(codes.ravel(), minlength=n_codes)[:n_codes].astype(np.float64)


def glcm(quantised: np.ndarray, levels: int, distance: int) -> np.ndarray:
    """Symmetric, normalised grey-level co-occurrence matrices for 4 angles.

    Identical to ``skimage.feature.graycomatrix(q, [distance], [0, π/4, π/2, 3π/4], levels,
    symmetric=True, normed=True)[:, :, 0, :]``. Each pixel pair (i at p, j at p + offset) is
    counted once as the code ``i · levels + j`` (``uint16``), so one 1-D histogram of
    ``levels²`` bins gives the matrix of an angle.

    Returns
    -------
    ndarray, shape (levels, levels, 4), float64
        ``P[i, j, a]`` the probability that a pixel of level i has level j at the offset of
        angle a (counted both ways).
    """
    return _glcm(quantised, int(levels), int(distance), from_grey=False)


def _glcm(image: np.ndarray, levels: int, distance: int, *, from_grey: bool) -> np.ndarray:
    """:func:`glcm` of ``image`` (quantised levels, or grey levels quantised on the fly)."""
    height, width = image.shape
    first_table, second_table = _pair_tables(levels, from_grey)
    first_codes = cv2.LUT(image, first_table)
    second_codes = cv2.LUT(image, second_table)
    out = np.zeros((levels, levels, len(GLCM_ANGLES)), dtype=np.float64)
    for a, angle in enumerate(GLCM_ANGLES):
        dr = round(np.sin(angle) * distance)
        dc = round(np.cos(angle) * distance)
        r0, r1 = max(0, -dr), height - max(0, dr)
        c0, c1 = max(0, -dc), width - max(0, dc)
        if r1 <= r0 or c1 <= c0:
            continue
        codes = cv2.add(first_codes[r0:r1, c0:c1], second_codes[r0 + dr : r1 + dr, c0 + dc : c1 + dc])
        matrix = _pair_counts(codes, levels * levels).reshape(levels, levels)
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
    # glcm(quantise(grey, levels), ...), quantising inside the pair-code lookups.
    props = glcm_properties(_glcm(grey, levels, int(params["glcm_distance"]), from_grey=True))
    return {
        "complexity.luminance_entropy": luminance_entropy(grey),
        "complexity.edge_density": cv2.countNonZero(image.edge_map) / image.size,
        "complexity.compression_ratio": compression_ratio(grey, int(params["jpeg_quality"])),
        "complexity.spectral_slope": spectral_slope(
            grey, float(params["spectral_min_cycles"]), float(params["spectral_max_frequency"])
        ),
        "complexity.glcm_contrast": props["contrast"],
        "complexity.glcm_homogeneity": props["homogeneity"],
        "complexity.glcm_energy": props["energy"],
        "complexity.glcm_correlation": props["correlation"],
    }
