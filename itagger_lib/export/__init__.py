"""The export room: tidy files of a workspace's data, each with its provenance.

* :mod:`.write` — :func:`export` (a folder in one format) and :func:`export_ratings` (one file);
* :mod:`.formats` — the registry of formats (``parquet``, ``csv``, ``bn``), as papermill's
  I/O handlers;
* :mod:`.table` — the per-image table (metrics, bins, mean ratings); :mod:`.bn` — its
  low/mid/high discretisation for Bayesian networks;
* :mod:`.files` — one frame to one file, the long ratings streamed to Parquet;
  :mod:`.provenance` — what every file carries, and reading it back.

The export only reads: ratings through :mod:`itagger_lib.ratings.frames`, metrics through
:mod:`itagger_lib.science.results`.
"""

from __future__ import annotations

from itagger_lib.export.bn import bn_frame
from itagger_lib.export.formats import ExportFormat, available_formats, get_format, register_format
from itagger_lib.export.provenance import read_provenance
from itagger_lib.export.table import table
from itagger_lib.export.write import export, export_ratings

__all__ = [
    "ExportFormat",
    "available_formats",
    "bn_frame",
    "export",
    "export_ratings",
    "get_format",
    "read_provenance",
    "register_format",
    "table",
]
