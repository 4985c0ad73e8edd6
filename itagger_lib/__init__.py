"""Image Tagger: a Jupyter-centric workbench for architecture image studies.

>>> import itagger_lib as it
>>> ws = it.Workspace()            # doctest: +SKIP
>>> ws.ingest("photos/")           # doctest: +SKIP
"""

from __future__ import annotations

from itagger_lib import errors
from itagger_lib._version import __version__
from itagger_lib.errors import ItaggerError
from itagger_lib.workspace import Workspace

__all__ = ["ItaggerError", "Workspace", "__version__", "errors"]
