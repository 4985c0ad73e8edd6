"""A folder of photo-like scenes with near-duplicates: scene 0 three times (original,
re-encoded at quality 50, half size), scene 1 twice (original, brighter), scenes 2–7 once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.designs.images import jpeg_bytes, scene

#: file name → the scene it shows
SCENES = {
    "s0.jpg": 0, "s0_q50.jpg": 0, "s0_half.jpg": 0, "s1.jpg": 1, "s1_bright.jpg": 1,
    **{f"s{k}.jpg": k for k in range(2, 8)},
}  # fmt: skip


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scenes")
    for k in range(8):
        (folder / f"s{k}.jpg").write_bytes(jpeg_bytes(scene(k)))
    (folder / "s0_q50.jpg").write_bytes(jpeg_bytes(scene(0), quality=50))
    half = np.asarray(Image.fromarray(scene(0)).resize((320, 240), Image.Resampling.LANCZOS))
    (folder / "s0_half.jpg").write_bytes(jpeg_bytes(half))
    bright = np.clip(scene(1).astype(np.float64) * 1.1, 0, 255).astype(np.uint8)
    (folder / "s1_bright.jpg").write_bytes(jpeg_bytes(bright))
    return folder
