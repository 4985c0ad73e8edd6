"""Fractal dimension of the edge map by box counting."""

from __future__ import annotations

import cv2
import numpy as np

from itagger_lib.errors import ScienceError
from itagger_lib.science._stats import linear_fit
from itagger_lib.science.working import WorkingImage, as_uint8_mask

__all__ = ["VERSION", "box_counting_dimension", "box_counting_fit", "box_counts", "compute"]

VERSION = "1"
KEYS = ("fractal.dimension", "fractal.r2")


def _as_mask(mask: np.ndarray) -> np.ndarray:
    """A ``uint8`` copy of ``mask``: 255 where it is non-zero, 0 elsewhere."""
    return cv2.threshold(as_uint8_mask(mask), 0, 255, cv2.THRESH_BINARY)[1]


def box_counts(mask: np.ndarray, max_box: int) -> tuple[np.ndarray, np.ndarray]:
    """Number of occupied boxes ``N(s)`` for box sizes ``s = 1, 2, 4, … <= max_box``.

    The grid is anchored at the top-left pixel; the last row/column of boxes may be partial.
    Counts come from repeated 2 x 2 OR-pooling, so the cost is about 4/3 of one pass.

    Returns
    -------
    sizes, counts : ndarray of int
    """
    level = _as_mask(mask)
    sizes, counts = [1], [cv2.countNonZero(level)]
    size = 2
    while size <= max_box and max(level.shape) > 1:
        height, width = level.shape
        if height % 2 or width % 2:
            level = cv2.copyMakeBorder(level, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT, value=0)
        # An exact 2x area reduction is a rounded integer mean: non-zero iff any of the four is.
        level = cv2.resize(level, (level.shape[1] // 2, level.shape[0] // 2), interpolation=cv2.INTER_AREA)
        level = cv2.threshold(level, 0, 255, cv2.THRESH_BINARY)[1]
        sizes.append(size)
        counts.append(cv2.countNonZero(level))
        size *= 2
    return np.array(sizes), np.array(counts)


def box_counting_fit(mask: np.ndarray, min_box: int = 4, max_box_divisor: int = 8) -> tuple[float, float]:
    """Box-counting (Minkowski-Bouligand) dimension of a binary mask and the fit's R².

    The grid is anchored at the top-left corner of the foreground's bounding box (h x w).
    ``N(s)`` boxes of side ``s`` (powers of two from ``min_box`` to
    ``max(h, w) / max_box_divisor``) contain at least one foreground pixel; the dimension is
    the least-squares slope ``D`` of ``log N(s) = D log(1/s) + c``.

    Parameters
    ----------
    mask : ndarray of bool, shape (H, W)
    min_box : int
        Smallest box side in pixels (a power of two).
    max_box_divisor : int
        The largest box side is at most ``max(h, w) / max_box_divisor``.

    Returns
    -------
    dimension : float
        In [0, 2]: about 1 for a smooth curve, 2 for a filled region; 0 for an empty mask.
    r2 : float
        Coefficient of determination of the log-log fit, in [0, 1]; 0 for an empty mask.

    References
    ----------
    Mandelbrot, B. (1982). *The Fractal Geometry of Nature*. Taylor, R. P., Micolich, A. P. &
    Jonas, D. (1999). Fractal analysis of Pollock's drip paintings. Nature 399, 422.
    Falconer, K. (2003). *Fractal Geometry*, 2nd ed., §3.1.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ScienceError(f"box counting needs a 2-D mask, got an array of shape {mask.shape}")
    mask = _as_mask(mask)
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return 0.0, 0.0
    # Anchoring the grid at the foreground's bounding box removes the dependence on where the
    # shape sits in the frame; the largest box is relative to the shape, not the canvas.
    mask = mask[y : y + h, x : x + w]
    max_box = max(mask.shape) // max(1, int(max_box_divisor))
    sizes, counts = box_counts(mask, max_box)
    keep = (sizes >= min_box) & (counts > 0)
    if np.count_nonzero(keep) < 2:
        return 0.0, 0.0
    slope, r2 = linear_fit(-np.log(sizes[keep]), np.log(counts[keep]))
    return slope, r2


def box_counting_dimension(mask: np.ndarray, min_box: int = 4, max_box_divisor: int = 8) -> float:
    """Box-counting dimension of a binary mask (see :func:`box_counting_fit`)."""
    return box_counting_fit(mask, min_box, max_box_divisor)[0]


def compute(image: WorkingImage) -> dict[str, float]:
    """Box-counting dimension of the Canny edge map and its R²."""
    params = image.params
    dimension, r2 = box_counting_fit(
        image.edge_map, int(params["fractal_min_box"]), int(params["fractal_max_box_divisor"])
    )
    return {"fractal.dimension": dimension, "fractal.r2": r2}
