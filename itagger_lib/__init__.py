"""Image Tagger: a Jupyter-centric workbench for architecture image studies.

>>> import itagger_lib as it
>>> ws = it.Workspace()            # doctest: +SKIP
>>> ws.ingest("photos/")           # doctest: +SKIP
>>> it.Explorer(ws)                # doctest: +SKIP

Widgets are imported on first use, so ``import itagger_lib`` stays light in batch jobs.
"""

from __future__ import annotations

import importlib
from typing import Any

from itagger_lib import errors
from itagger_lib._version import __version__
from itagger_lib.errors import ItaggerError
from itagger_lib.workspace import Workspace

_LAZY = {
    "AdminCockpit": "itagger_lib.widgets.admin",
    "UploadPanel": "itagger_lib.widgets.upload",
    "TaggingWorkbench": "itagger_lib.widgets.tagging",
    "Inspector": "itagger_lib.widgets.inspector",
    "Explorer": "itagger_lib.widgets.explorer",
    "Codebook": "itagger_lib.codebook",
    "Attribute": "itagger_lib.codebook",
}

__all__ = ["ItaggerError", "Workspace", "__version__", "errors", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'itagger_lib' has no attribute {name!r}")
