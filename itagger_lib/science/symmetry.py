"""Mirror symmetry: left-right and top-bottom similarity of the luminance image."""

from __future__ import annotations

import cv2
import numpy as np

from itagger_lib.science.working import WorkingImage

__all__ = ["VERSION", "compute", "mirror_similarity"]

VERSION = "1"
KEYS = ("symmetry.left_right", "symmetry.top_bottom")


def mirror_similarity(grey: np.ndarray, axis: int, long_side: int) -> float:
    """Similarity of a luminance image to its mirror image.

    The image is first reduced (area interpolation) so its long side is ``long_side``
    pixels, which makes the measure about layout rather than pixel noise and nearly
    independent of resolution. With ``S`` the reduced image and ``S'`` the reduced mirror
    image about the vertical (``axis=1``, left-right) or horizontal (``axis=0``,
    top-bottom) centre line:
    ``similarity = 1 - mean|S - S'| / 255``.

    Returns
    -------
    float
        In [0, 1]; exactly 1 for a mirror-symmetric image (and any uniform image).

    References
    ----------
    Bauerly, M. & Liu, Y. (2006). Computational modeling and experimental investigation of
    effects of compositional elements on interface and design aesthetics. Int. J.
    Human-Computer Studies 64(8), 670-682. Jacobsen, T. & Höfel, L. (2003). Descriptive and
    evaluative judgment processes. Perceptual and Motor Skills 96(3).
    """
    height, width = grey.shape
    mirrored = grey[:, ::-1] if axis == 1 else grey[::-1, :]
    scale = long_side / max(height, width)
    if scale < 1:
        # Reducing the image and its mirror separately (rather than mirroring the reduced
        # image) keeps an exactly symmetric input at exactly 1 whatever the rounding.
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        mirrored = cv2.resize(np.ascontiguousarray(mirrored), size, interpolation=cv2.INTER_AREA)
    difference = np.abs(grey.astype(np.int16) - mirrored.astype(np.int16))
    return 1.0 - float(difference.mean(dtype=np.float64)) / 255.0


def compute(image: WorkingImage) -> dict[str, float]:
    """Left-right and top-bottom mirror similarity of a working image."""
    long_side = int(image.params["symmetry_long_side"])
    return {
        "symmetry.left_right": mirror_similarity(image.grey, 1, long_side),
        "symmetry.top_bottom": mirror_similarity(image.grey, 0, long_side),
    }
