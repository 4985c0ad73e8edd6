"""Decoding an image file small and grey for hashing: the one I/O function of the package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from itagger_lib.errors import CorruptImageError, UnreadableFileError, UnsupportedFormatError

__all__ = ["read_grey_reduced"]


def read_grey_reduced(path: str | Path, min_side: int = 128) -> np.ndarray:
    """The luminance of an image file, decoded at the smallest size with both sides ≥ ``min_side``.

    JPEGs are decoded by libjpeg at 1/2, 1/4 or 1/8 scale (Pillow's ``Image.draft``; the
    DCT is scaled, not the pixels), straight to luminance: a 1600×1200 photograph becomes
    200×150 at a fraction of the cost of a full decode. Other formats are decoded in full
    and converted to ``L`` (ITU-R 601-2 luma, as ``imagehash`` does). With the default
    ``min_side`` of 128 the 32×32 resampling of :func:`phash` still averages ≥ 4×4 pixels
    into each of its own, and the hash equals that of the full-size decode or differs in a
    bit or two (``tests/designs/test_near_duplicates.py``).

    Returns
    -------
    (h, w) uint8 array
    """
    try:
        with Image.open(path) as image:
            image.draft("L", (min_side, min_side))
            return np.asarray(image.convert("L"))
    except (FileNotFoundError, PermissionError, IsADirectoryError) as error:
        raise UnreadableFileError(path, f"cannot be opened ({error.strerror})") from error
    except Image.UnidentifiedImageError as error:
        raise UnsupportedFormatError(path, "is not an image format Pillow can read") from error
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise CorruptImageError(path, f"cannot be decoded for hashing ({error})") from error
