"""Generated, architecture-like sample images (no downloads): facades, sky and greenery.

Deterministic for a given seed, so the demo, the tests and the benchmarks see the same
pixels on every machine. They are drawings, not photographs: fine for exercising the
pipeline, not for drawing scientific conclusions.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

# name, wall colour (RGB), window colour, rows, columns, greenery share of the bottom
_STYLES = (
    ("brick", (150, 70, 50), (40, 50, 70), 5, 8, 0.25),
    ("concrete", (160, 160, 155), (60, 70, 80), 8, 6, 0.10),
    ("glass", (90, 130, 170), (150, 190, 220), 12, 10, 0.0),
    ("stucco", (225, 205, 160), (70, 60, 50), 3, 4, 0.45),
    ("timber", (120, 85, 55), (230, 220, 190), 2, 3, 0.6),
    ("modern", (235, 235, 235), (30, 30, 35), 6, 14, 0.15),
)


def facade(width: int = 800, height: int = 600, seed: int = 0) -> np.ndarray:
    """An RGB ``uint8`` drawing of a building: sky, facade with windows, greenery, ground."""
    rng = np.random.default_rng(seed)
    name, wall, window, rows, cols, green = _STYLES[seed % len(_STYLES)]
    del name
    img = np.zeros((height, width, 3), np.float32)
    horizon = int(height * rng.uniform(0.2, 0.4))
    sky_top = np.array([70, 130, 200], np.float32)
    sky_low = np.array([190, 215, 240], np.float32)
    t = np.linspace(0, 1, horizon, dtype=np.float32)[:, None, None]
    img[:horizon] = sky_top * (1 - t) + sky_low * t
    ground = int(height * 0.88)
    img[horizon:ground] = wall
    img[ground:] = (95, 95, 90)
    left = int(width * rng.uniform(0.0, 0.15))
    right = width - int(width * rng.uniform(0.0, 0.15))
    img[:horizon, :left] = img[:horizon, :left]
    img[horizon:ground, :left] = sky_low if left else img[horizon:ground, :left]
    img[horizon:ground, right:] = sky_low if right < width else img[horizon:ground, right:]
    cell_w = (right - left) / cols
    cell_h = (ground - horizon) / (rows + 0.5)
    for r in range(rows):
        for c in range(cols):
            x0 = int(left + c * cell_w + cell_w * 0.22)
            x1 = int(left + (c + 1) * cell_w - cell_w * 0.22)
            y0 = int(horizon + r * cell_h + cell_h * 0.25)
            y1 = int(horizon + (r + 1) * cell_h - cell_h * 0.15)
            shade = rng.uniform(0.8, 1.15)
            img[y0:y1, x0:x1] = np.clip(np.array(window, np.float32) * shade, 0, 255)
            img[y0 - 2 : y0, x0 - 2 : x1 + 2] = np.array(wall, np.float32) * 0.7
    if green > 0:
        for _ in range(int(40 * green) + 2):
            cx = int(rng.uniform(0, width))
            cy = int(rng.uniform(ground - (ground - horizon) * green, ground + 10))
            radius = int(rng.uniform(0.03, 0.09) * width)
            colour = (
                int(rng.uniform(30, 70)),
                int(rng.uniform(100, 150)),
                int(rng.uniform(30, 60)),
            )
            cv2.circle(img, (cx, cy), radius, colour, -1)
    texture = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    blurred = cv2.GaussianBlur(img + texture, (3, 3), 0)
    return np.clip(blurred, 0, 255).astype(np.uint8)


def _save(rgb: np.ndarray, path: Path, fmt: str, orientation: int = 1) -> None:
    image = Image.fromarray(rgb)
    if fmt == "JPEG":
        exif = Image.Exif()
        if orientation != 1:
            exif[0x0112] = orientation
        image.save(path, "JPEG", quality=88, exif=exif.tobytes())
    else:
        image.save(path, fmt)


def write_samples(
    dest: str | Path, n: int = 12, width: int = 800, height: int = 600, seed: int = 0
) -> list[Path]:
    """Write ``n`` sample images into ``dest`` and return their paths.

    Most are JPEGs; the set also holds one PNG, WebP, TIFF and BMP, and one JPEG stored
    sideways with an EXIF orientation tag, so ingest sees the formats it must support.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    extras = {1: ("PNG", "png"), 2: ("WEBP", "webp"), 3: ("TIFF", "tif"), 4: ("BMP", "bmp")}
    paths = []
    for index in range(n):
        rgb = facade(width, height, seed + index)
        fmt, ext = extras.get(index, ("JPEG", "jpg"))
        path = dest / f"facade_{index:03d}.{ext}"
        if index == 5:
            # Stored rotated; the EXIF tag (6 = rotate 90° clockwise to display) undoes it.
            _save(np.ascontiguousarray(np.rot90(rgb, 1)), path, fmt, orientation=6)
        else:
            _save(rgb, path, fmt)
        paths.append(path)
    return paths


def jpeg_bytes(width: int = 1600, height: int = 1200, seed: int = 0, quality: int = 90) -> bytes:
    """One photo-like JPEG in memory (for benchmarks)."""
    buffer = io.BytesIO()
    Image.fromarray(facade(width, height, seed)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()
