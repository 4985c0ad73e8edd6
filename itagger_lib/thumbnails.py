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

from itagger_lib.images import row as image_row
from itagger_lib.imaging import encode_jpeg, load_rgb

if TYPE_CHECKING:
    from itagger_lib._types import ImageRef
    from itagger_lib.context import Context

__all__ = ["cache_path", "display_jpeg"]


def cache_path(ctx: Context, sha256: str, long_side: int) -> Path:
    """Where the display JPEG of an image with this hash and long side is cached."""
    return ctx.settings.home / "cache" / "display" / str(long_side) / sha256[:2] / f"{sha256}.jpg"


def display_jpeg(ctx: Context, image: ImageRef | dict[str, Any], long_side: int = 256) -> bytes:
    """JPEG bytes of an image with its long side at most ``long_side`` (cached)."""
    row = image if isinstance(image, dict) else image_row(ctx.engine, image)
    target = cache_path(ctx, row["sha256"], long_side)
    if target.is_file():
        return target.read_bytes()
    source = ctx.store.path_for(row["sha256"], row["ext"])
    data = encode_jpeg(load_rgb(source, long_side, size_hint=max(row["width"], row["height"])), quality=85)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only home (a tagger's mount) still gets its image, just uncached
    return data
