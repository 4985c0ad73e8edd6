"""Line orientation: shares of vertical, horizontal and oblique edges, orientation entropy."""

from __future__ import annotations

import numpy as np

from itagger_lib.science._stats import shannon_entropy
from itagger_lib.science.working import WorkingImage

__all__ = ["VERSION", "compute", "edge_orientations", "orientation_shares"]

VERSION = "1"
KEYS = (
    "lines.vertical_share",
    "lines.horizontal_share",
    "lines.oblique_share",
    "lines.orientation_entropy",
)


def edge_orientations(edges: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """Orientation of the edge line at every edge pixel (non-zero in ``edges``), in degrees [0, 180).

    The edge runs perpendicular to the intensity gradient:
    ``θ = (atan2(g_y, g_x) + 90°) mod 180°``; 0° is horizontal, 90° vertical.
    """
    selected = np.flatnonzero(edges)
    angle = np.arctan2(gy.ravel()[selected], gx.ravel()[selected]).astype(np.float64)
    angle = np.degrees(angle, out=angle)
    angle += 90.0
    return np.mod(angle, 180.0, out=angle)


def orientation_shares(theta: np.ndarray, tolerance: float, bins: int) -> dict[str, float]:
    """Shares of vertical, horizontal and oblique edge pixels and the orientation entropy.

    - vertical: ``|θ - 90°| <= tolerance``; horizontal: ``θ <= tolerance`` or
      ``θ >= 180° - tolerance``; oblique: the rest. The three shares sum to 1 (all 0 when
      there are no edges).
    - entropy: ``-sum p_k log2 p_k`` of the histogram of θ in ``bins`` equal sectors of
      [0°, 180°); bits in [0, log2(bins)].

    References
    ----------
    Switkes, E., Mayer, M. J. & Sloan, J. A. (1978). Spatial frequency analysis of the visual
    environment: anisotropy and the carpentered environment hypothesis. Vision Res. 18.
    Coburn, A. et al. (2019). Psychological responses to natural patterns in architecture.
    J. Environ. Psychol. 62 (orientation entropy of edges).
    """
    n = theta.size
    if n == 0:
        return {"vertical": 0.0, "horizontal": 0.0, "oblique": 0.0, "entropy": 0.0}
    vertical = np.count_nonzero(np.abs(theta - 90.0) <= tolerance)
    horizontal = np.count_nonzero((theta <= tolerance) | (theta >= 180.0 - tolerance))
    index = np.minimum((theta * (bins / 180.0)).astype(np.intp), bins - 1)
    return {
        "vertical": vertical / n,
        "horizontal": horizontal / n,
        "oblique": (n - vertical - horizontal) / n,
        "entropy": shannon_entropy(np.bincount(index, minlength=bins)),
    }


def compute(image: WorkingImage) -> dict[str, float]:
    """Orientation statistics of the Canny edges of a working image."""
    gx, gy = image.gradients
    theta = edge_orientations(image.edges, gx, gy)
    shares = orientation_shares(
        theta, float(image.params["line_tolerance_deg"]), int(image.params["orientation_bins"])
    )
    return {
        "lines.vertical_share": shares["vertical"],
        "lines.horizontal_share": shares["horizontal"],
        "lines.oblique_share": shares["oblique"],
        "lines.orientation_entropy": shares["entropy"],
    }
