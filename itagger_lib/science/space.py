"""Space: clutter (spread of edges over a grid) and central openness."""

from __future__ import annotations

import cv2
import numpy as np

from itagger_lib.science._stats import shannon_entropy
from itagger_lib.science.working import WorkingImage, as_uint8_mask

__all__ = ["VERSION", "central_openness", "clutter", "compute"]

VERSION = "2"
KEYS = ("space.clutter", "space.central_openness")


def clutter(edges: np.ndarray, grid: int) -> float:
    """Spread of edge pixels over a ``grid`` x ``grid`` partition of the image.

    ``clutter = H(c) / log2(grid²)`` where ``c`` are the edge-pixel counts of the cells and
    ``H`` the Shannon entropy in bits: 1 when edges are spread evenly over every cell (a
    busy, cluttered view), 0 when they sit in one cell or there are none.

    References
    ----------
    Rosenholtz, R., Li, Y. & Nakano, L. (2007). Measuring visual clutter. J. Vision 7(2):17
    (edge-based clutter); Shannon (1948).
    """
    height, width = edges.shape
    rows = np.linspace(0, height, grid + 1).astype(np.intp)
    cols = np.linspace(0, width, grid + 1).astype(np.intp)
    # Cell counts from the integral image of the 0/1 map: exact integer sums.
    ones = cv2.threshold(as_uint8_mask(edges), 0, 1, cv2.THRESH_BINARY)[1]
    total = cv2.integral(ones, sdepth=cv2.CV_32S)[np.ix_(rows, cols)].astype(np.int64)
    cells = total[1:, 1:] - total[:-1, 1:] - total[1:, :-1] + total[:-1, :-1]
    if grid < 2 or cells.sum() == 0:
        return 0.0
    return shannon_entropy(cells) / np.log2(grid * grid)


def central_openness(edges: np.ndarray, central_fraction: float, radius: float) -> float:
    """How far the centre of the view is from any edge.

    With ``d(x)`` the Euclidean distance (pixels) from pixel x to the nearest edge pixel,
    ``R = radius · min(H, W)`` and C the central ``central_fraction`` of the width and
    height: ``openness = mean_{x in C} min(d(x), R) / R``.

    Returns
    -------
    float
        In [0, 1]: 0 when the centre is dense with edges, 1 when no edge lies within R of
        any central pixel (including an image without edges).

    References
    ----------
    Stamps, A. E. (2005). Visual permeability, locomotive permeability, safety, and
    enclosure. Environ. Behav. 37(5), 587-619 (openness and enclosure of views).
    """
    height, width = edges.shape
    limit = float(radius) * min(height, width)
    if limit <= 0:
        return 1.0
    margin_y = round(height * (1 - central_fraction) / 2)
    margin_x = round(width * (1 - central_fraction) / 2)
    # Only edges within R of the centre matter, so the transform runs on the centre plus R.
    pad = int(np.ceil(limit)) + 1
    y0, x0 = max(0, margin_y - pad), max(0, margin_x - pad)
    y1, x1 = min(height, height - margin_y + pad), min(width, width - margin_x + pad)
    # Non-zero off the edges: the distance transform measures to the nearest zero (edge).
    region = cv2.threshold(as_uint8_mask(edges[y0:y1, x0:x1]), 0, 255, cv2.THRESH_BINARY_INV)[1]
    distance = cv2.distanceTransform(region, cv2.DIST_L2, cv2.DIST_MASK_5)
    centre = distance[margin_y - y0 : height - margin_y - y0, margin_x - x0 : width - margin_x - x0]
    if centre.size == 0:
        return 1.0
    clip = np.float32(limit)
    return float(np.minimum(centre, clip).mean(dtype=np.float64)) / float(clip)


def compute(image: WorkingImage) -> dict[str, float]:
    """Clutter and central openness of the Canny edges of a working image."""
    params = image.params
    return {
        "space.clutter": clutter(image.edge_map, int(params["clutter_grid"])),
        "space.central_openness": central_openness(
            image.edge_map,
            float(params["openness_central_fraction"]),
            float(params["openness_radius"]),
        ),
    }
