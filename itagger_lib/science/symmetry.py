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
    reduced, mirrored = _mirror_pairs(grey, long_side, (axis,))[axis]
    return _similarity(reduced, mirrored)


def _similarity(reduced: np.ndarray, mirrored: np.ndarray) -> float:
    # |S - S'| of uint8 images is exact in uint8; the mean of integers is exact in float64.
    return 1.0 - float(cv2.absdiff(reduced, mirrored).mean(dtype=np.float64)) / 255.0


def _mirror_pairs(
    grey: np.ndarray, long_side: int, axes: tuple[int, ...]
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{axis: (reduced image, reduced mirror image)}``, sharing one reduction where exact."""
    height, width = grey.shape
    flips = {axis: 1 if axis == 1 else 0 for axis in axes}
    scale = long_side / max(height, width)
    if scale >= 1:
        return {axis: (grey, cv2.flip(grey, flip)) for axis, flip in flips.items()}
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    reduced = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    if width % size[0] == 0 and height % size[1] == 0:
        # Whole blocks of an integer size: each reduced pixel is the rounded mean of one
        # block, and the mirror of a block holds the same pixels, so mirroring commutes with
        # the reduction exactly and one reduction serves every axis.
        return {axis: (reduced, cv2.flip(reduced, flip)) for axis, flip in flips.items()}
    # Otherwise the image and its mirror are reduced separately (rather than mirroring the
    # reduced image), which keeps an exactly symmetric input at exactly 1 whatever the rounding.
    return {
        axis: (reduced, cv2.resize(cv2.flip(grey, flip), size, interpolation=cv2.INTER_AREA))
        for axis, flip in flips.items()
    }


def compute(image: WorkingImage) -> dict[str, float]:
    """Left-right and top-bottom mirror similarity of a working image."""
    pairs = _mirror_pairs(image.grey, int(image.params["symmetry_long_side"]), (1, 0))
    return {
        "symmetry.left_right": _similarity(*pairs[1]),
        "symmetry.top_bottom": _similarity(*pairs[0]),
    }
