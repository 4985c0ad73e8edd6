"""The export formats, a registry: each format writes a workspace's data into a folder.

As papermill's I/O handlers (``papermill/iorw.py``): a format is an object with one job,
registered by name, and :func:`~itagger_lib.export.write.export` asks the registry rather
than branching on the name. The built-in formats:

* ``parquet``: ``ratings.parquet`` (the long ratings, streamed from the database while the
  per-image means are kept) and ``table.parquet`` (one row per image);
* ``csv``: ``ratings.csv`` and ``table.csv``, each with a ``.json`` provenance sidecar;
* ``bn``: ``bn.csv`` (image × low/mid/high variable, :func:`~itagger_lib.export.bn.bn_frame`)
  and ``bn_codebook.json`` (each variable, its states, cut points and source).

A new format is a class with ``write(ctx, folder, metrics) -> list[Path]`` passed to
:func:`register_format`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from itagger_lib.errors import ArgumentError
from itagger_lib.export.bn import bn_frame
from itagger_lib.export.files import stream_ratings, write_csv, write_parquet
from itagger_lib.export.provenance import provenance
from itagger_lib.export.table import MEANS_COLUMNS, per_image
from itagger_lib.ratings.frames import ratings_arrow
from itagger_lib.science.results import stored_cut_points

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.context import Context

__all__ = ["ExportFormat", "available_formats", "get_format", "register_format"]


class ExportFormat(Protocol):
    """One export format: what it writes into a folder."""

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        """Write the workspace's data into ``folder`` (which exists) and return the files.

        ``metrics`` is the science metrics frame with bins
        (:func:`~itagger_lib.science.results.metrics_frame`), its ``attrs`` naming the run.
        """
        ...


class ParquetExport:
    """``ratings.parquet`` streamed from the database, then ``table.parquet``."""

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        # the ratings are read once: streamed to the file, with the columns the means need kept
        path, written, kept = stream_ratings(
            ctx, folder / "ratings.parquet", None, metrics.attrs.get("run_id"), keep=MEANS_COLUMNS
        )
        assert kept is not None
        return [path, write_parquet(per_image(ctx, metrics, kept), folder / "table.parquet", written)]


class CsvExport:
    """``ratings.csv`` and ``table.csv``, each with its ``.json`` provenance sidecar."""

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        ratings = ratings_arrow(ctx)
        table = per_image(ctx, metrics, ratings)
        stamp = provenance(ctx, ratings, table.attrs.get("run_id"))
        return [
            write_csv(ratings, folder / "ratings.csv", stamp),
            write_csv(table, folder / "table.csv", stamp),
        ]


class BnExport:
    """``bn.csv`` (discretised per-image table) and ``bn_codebook.json`` (its variables)."""

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        ratings = ratings_arrow(ctx)
        table = per_image(ctx, metrics, ratings)
        stamp = provenance(ctx, ratings, table.attrs.get("run_id"))
        states, variables = bn_frame(table, stored_cut_points(ctx, table.attrs.get("run_id")))
        written = write_csv(states, folder / "bn.csv", stamp)
        codebook = folder / "bn_codebook.json"
        codebook.write_text(json.dumps({**stamp, "variables": variables}, indent=2) + "\n", encoding="utf-8")
        return [written, codebook]


_FORMATS: dict[str, ExportFormat] = {}


def register_format(name: str, export_format: ExportFormat) -> None:
    """Make ``export_format`` available as ``ws.export(out, format=name)`` and ``itagger export``."""
    _FORMATS[name] = export_format


def get_format(name: str) -> ExportFormat:
    """The format registered as ``name``; :class:`ArgumentError` naming the known ones."""
    if name not in _FORMATS:
        raise ArgumentError(f"unknown export format {name!r}; use one of {', '.join(_FORMATS)}")
    return _FORMATS[name]


def available_formats() -> tuple[str, ...]:
    """The registered format names, in the order they were registered."""
    return tuple(_FORMATS)


register_format("parquet", ParquetExport())
register_format("csv", CsvExport())
register_format("bn", BnExport())
