"""Generated test images for the science tests: fractal masks and a photo-like scene."""

from __future__ import annotations

import itertools

import cv2
import numpy as np
import pytest

from itagger_lib.samples import facade


def sierpinski_triangle(size: int = 1024) -> np.ndarray:
    """Pascal's triangle mod 2: pixel (i, j) is set when ``i & j == 0`` (dimension log 3/log 2)."""
    i = np.arange(size)
    return (i[:, None] & i[None, :]) == 0


def sierpinski_carpet(level: int = 6) -> np.ndarray:
    """3^level square carpet (dimension log 8/log 3)."""
    mask = np.ones((1, 1), bool)
    for _ in range(level):
        hole = np.zeros_like(mask)
        mask = np.block([[mask, mask, mask], [mask, hole, mask], [mask, mask, mask]])
    return mask


def koch_curve(size: int = 1024, level: int = 7) -> np.ndarray:
    """A Koch curve rasterised with 1-pixel lines (dimension log 4/log 3)."""
    points = np.array([[0.0, 0.0], [1.0, 0.0]])
    turn = np.array([[0.5, -np.sqrt(3) / 2], [np.sqrt(3) / 2, 0.5]])
    for _ in range(level):
        refined = [points[0]]
        for a, b in itertools.pairwise(points):
            step = (b - a) / 3
            refined += [a + step, a + step + turn @ step, a + 2 * step, b]
        points = np.array(refined)
    points = points * (size - 1)
    points[:, 1] = points[:, 1].max() - points[:, 1]
    canvas = np.zeros((int(points[:, 1].max()) + 2, size), np.uint8)
    cv2.polylines(canvas, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], False, 1, 1)
    return canvas > 0


def photo_scene(width: int = 2048, height: int = 1536, seed: int = 3) -> np.ndarray:
    """A facade drawing made photo-like: foliage texture, roof diagonals, sensor noise, blur."""
    rng = np.random.default_rng(seed)
    rgb = facade(width, height, seed=seed).astype(np.float32)
    scale = width / 2048
    texture = cv2.GaussianBlur(rng.normal(0, 1, (height, width)).astype(np.float32), (0, 0), 3 * scale)
    rgb += 8 * texture[..., None] / texture.std()
    for k in range(6):
        x0 = int((0.1 + 0.15 * k) * width)
        cv2.line(
            rgb,
            (x0, int(0.15 * height)),
            (x0 + int(0.2 * width), int(0.45 * height)),
            (60, 50, 40),
            max(1, round(6 * scale)),
            cv2.LINE_AA,
        )
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.8 * scale)
    rgb += rng.normal(0, 3, rgb.shape).astype(np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def write_jpeg(path, rgb: np.ndarray, quality: int = 92) -> str:
    ok = cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return str(path)


@pytest.fixture(scope="session")
def scene_2x() -> np.ndarray:
    return photo_scene()


@pytest.fixture(scope="session")
def scene_files(tmp_path_factory, scene_2x):
    """The same photograph saved at 1x (1024 x 768) and 2x (2048 x 1536) as JPEG."""
    folder = tmp_path_factory.mktemp("scene")
    one = cv2.resize(scene_2x, (1024, 768), interpolation=cv2.INTER_AREA)
    return {
        "1x": (write_jpeg(folder / "scene_1x.jpg", one), 1024, 768),
        "2x": (write_jpeg(folder / "scene_2x.jpg", scene_2x), 2048, 1536),
    }


@pytest.fixture(scope="session")
def fractal_masks() -> dict[str, np.ndarray]:
    return {
        "sierpinski_triangle": sierpinski_triangle(),
        "sierpinski_carpet": sierpinski_carpet(),
        "koch_curve": koch_curve(),
    }
