"""Display-size JPEGs of stored images, cached on disk by hash and size.

The explorer's grid and the inspector show images at a few fixed sizes; decoding a 24 MP
original for a 256 px tile on every page turn would dominate. Each size is made once
(reduced JPEG decode + area resize) and kept under ``ITAGGER_HOME/cache/display/<size>/``.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itagger_lib.imaging import encode_jpeg, load_rgb

if TYPE_CHECKING:
    from itagger_lib.workspace import Workspace


def cache_path(ws: Workspace, sha256: str, long_side: int) -> Path:
    return ws.home / "cache" / "display" / str(long_side) / sha256[:2] / f"{sha256}.jpg"


def display_jpeg(ws: Workspace, image: int | str | dict[str, Any], long_side: int = 256) -> bytes:
    """JPEG bytes of an image with its long side at most ``long_side`` (cached)."""
    row = image if isinstance(image, dict) else ws.image(image)
    target = cache_path(ws, row["sha256"], long_side)
    if target.is_file():
        return target.read_bytes()
    source = ws.store.path_for(row["sha256"], row["ext"])
    data = encode_jpeg(load_rgb(source, long_side, size_hint=max(row["width"], row["height"])), quality=85)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only home (a tagger's mount) still gets its image, just uncached
    return data
