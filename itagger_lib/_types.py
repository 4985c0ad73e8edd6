"""Type aliases shared by every layer: what a caller may pass for an image, a set of images, a path.

Imports nothing of ours, so any module may import it (as httpx's ``_types.py``). Aliases
that name a class of ours live beside that class: ``CodebookRef`` in
:mod:`itagger_lib.codebook.model`, ``StudyRef`` in :mod:`itagger_lib.ratings.studies`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["ImageRef", "ImageSelection", "JSONValue", "StrPath"]

#: One image: its id (a Python or NumPy integer, e.g. from a DataFrame index), at least
#: 8 hex digits of its SHA-256, or (where a function says so) the file name it was
#: ingested from.
ImageRef: TypeAlias = "int | np.integer[Any] | str"

#: Several images: one reference, an iterable of references, a pandas object indexed by
#: image id (a DataFrame or Series from ``ws.images()`` or ``ws.metrics()``), or ``None``
#: for every image of the workspace.
ImageSelection: TypeAlias = "ImageRef | Iterable[ImageRef] | pd.DataFrame | pd.Series | pd.Index | None"

#: A file system path as a string or a path-like object.
StrPath: TypeAlias = "str | os.PathLike[str]"

#: What ``json.dumps`` takes: the values of run parameters and stored settings.
JSONValue: TypeAlias = "str | int | float | bool | list[Any] | dict[str, Any] | None"
