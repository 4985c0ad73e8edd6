"""Photo-like test scenes: a smooth colour field, flat rectangles (facades) and sensor noise."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image


def scene(seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """An RGB ``uint8`` scene, different for every seed."""
    rng = np.random.default_rng(seed)
    field = cv2.resize(rng.normal(0, 1, (6, 8, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
    image = (field - field.min()) / (np.ptp(field) + 1e-9) * 180 + 30
    for _ in range(int(rng.integers(5, 25))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        x1, y1 = (
            x0 + int(rng.integers(width // 40, width // 3)),
            y0 + int(rng.integers(height // 30, height // 3)),
        )
        image[y0:y1, x0:x1] = rng.uniform(0, 255, 3)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
