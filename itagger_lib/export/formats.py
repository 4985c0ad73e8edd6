"""The export formats, a registry: each format writes a workspace's data into a folder.

As papermill's I/O handlers (``papermill/iorw.py``): a format is an object with one job,
registered by name, and :func:`~itagger_lib.export.write.export` asks the registry rather
than branching on the name. The built-in formats:

* ``parquet``: ``ratings.parquet`` (the long ratings, streamed from the database while the
  per-image means are kept) and ``table.parquet`` (one row per image);
* ``csv``: ``ratings.csv`` and ``table.csv``, each with a ``.json`` provenance sidecar;
* ``studies`` / ``studies-csv``: the judgements of pairwise and best–worst studies in long
  format and their scores per image (:mod:`itagger_lib.export.studies`);
* ``bn``: ``bn.csv`` (image × discrete variable, :func:`~itagger_lib.export.bn.bn_frame`)
  and ``bn_codebook.json`` (each variable's source, statistic, states, cut points and rule,
  and the columns left out with their reasons).

The per-image table's provenance also describes its rating columns (``columns``: source,
attribute, level, statistic) and names the VLM rater and runs its ``vlm.*`` columns come
from (``vlm``).

A new format is a class with ``write(ctx, folder, metrics) -> list[Path]`` passed to
:func:`register_format`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from itagger_lib.codebook.storage import stored_attributes
from itagger_lib.errors import ArgumentError
from itagger_lib.export.bn import bn_frame
from itagger_lib.export.files import stream_ratings, write_csv, write_parquet
from itagger_lib.export.provenance import provenance
from itagger_lib.export.studies import StudiesExport
from itagger_lib.export.table import RATING_COLUMNS, per_image, rating_columns
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
            ctx, folder / "ratings.parquet", None, metrics.attrs.get("run_id"), keep=RATING_COLUMNS
        )
        assert kept is not None
        table = per_image(ctx, metrics, kept)
        return [path, write_parquet(table, folder / "table.parquet", _described(written, table))]


class CsvExport:
    """``ratings.csv`` and ``table.csv``, each with its ``.json`` provenance sidecar."""

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        ratings = ratings_arrow(ctx)
        table = per_image(ctx, metrics, ratings)
        stamp = provenance(ctx, ratings, table.attrs.get("run_id"))
        return [
            write_csv(ratings, folder / "ratings.csv", stamp),
            write_csv(table, folder / "table.csv", _described(stamp, table)),
        ]


class BnExport:
    """``bn.csv`` (discretised per-image variables) and ``bn_codebook.json`` (each variable)."""

    def write(self, ctx: Context, folder: Path, metrics: pd.DataFrame) -> list[Path]:
        import pyarrow as pa

        ratings = ratings_arrow(ctx)
        attributes = stored_attributes(ctx)
        frame = ratings.select(list(RATING_COLUMNS)).to_pandas() if isinstance(ratings, pa.Table) else ratings
        rated = rating_columns(ctx, frame, attributes, ordinal=("median_low",))
        stamp = {**provenance(ctx, ratings, metrics.attrs.get("run_id")), "vlm": rated.attrs.get("vlm")}
        run_id = metrics.attrs.get("run_id")
        states, variables, left_out = bn_frame(metrics, stored_cut_points(ctx, run_id), rated, attributes)
        written = write_csv(states, folder / "bn.csv", stamp)
        codebook = folder / "bn_codebook.json"
        document = {**stamp, "variables": variables, "left_out": left_out}
        codebook.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
        return [written, codebook]


def _described(stamp: dict[str, Any], table: pd.DataFrame) -> dict[str, Any]:
    """The provenance of a per-image table: the VLM rater and runs of its ``vlm.*`` columns,
    and what each rating column holds."""
    return {**stamp, "vlm": table.attrs.get("vlm"), "columns": table.attrs.get("columns", {})}


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
# Pairwise and best–worst studies: judgements in long format and scores per image.
register_format("studies", StudiesExport("parquet"))
register_format("studies-csv", StudiesExport("csv"))
