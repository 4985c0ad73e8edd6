"""Image Tagger: a Jupyter-centric workbench for architecture image studies.

>>> import itagger_lib as it
>>> ws = it.Workspace()            # doctest: +SKIP
>>> ws.ingest("photos/")           # doctest: +SKIP
>>> it.Explorer(ws)                # doctest: +SKIP

The names a notebook needs are here (``__all__``); everything else is reachable in its
module (the rooms are listed in ``docs/design.md``). Widgets and the codebook classes are
imported on first use, so ``import itagger_lib`` stays light in batch jobs; ``dir(it)``
and tab completion list them all the same.
"""

from __future__ import annotations

import typing

from itagger_lib import _lazy, errors
from itagger_lib._version import __version__
from itagger_lib.errors import ItaggerError
from itagger_lib.workspace import Workspace

if typing.TYPE_CHECKING:
    from itagger_lib.codebook import Attribute, Codebook
    from itagger_lib.widgets.admin import AdminCockpit
    from itagger_lib.widgets.explorer import Explorer
    from itagger_lib.widgets.inspector import Inspector
    from itagger_lib.widgets.tagging import TaggingWorkbench
    from itagger_lib.widgets.upload import UploadPanel

# Name → the module that defines it, imported by ``__getattr__`` on first use.
_LAZY = {
    "AdminCockpit": "itagger_lib.widgets.admin",
    "Attribute": "itagger_lib.codebook",
    "Codebook": "itagger_lib.codebook",
    "Explorer": "itagger_lib.widgets.explorer",
    "Inspector": "itagger_lib.widgets.inspector",
    "TaggingWorkbench": "itagger_lib.widgets.tagging",
    "UploadPanel": "itagger_lib.widgets.upload",
}

__all__ = [
    "AdminCockpit",
    "Attribute",
    "Codebook",
    "Explorer",
    "Inspector",
    "ItaggerError",
    "TaggingWorkbench",
    "UploadPanel",
    "Workspace",
    "__version__",
    "errors",
]


__getattr__, __dir__ = _lazy.attach(__name__, _LAZY, __all__, globals().keys)
