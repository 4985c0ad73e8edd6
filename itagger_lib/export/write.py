"""Writing a workspace's data out: a folder in one registered format, or one ratings file.

Every written file carries its provenance (:mod:`~itagger_lib.export.provenance`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from itagger_lib.errors import ArgumentError
from itagger_lib.export.files import FILE_WRITERS, stream_ratings
from itagger_lib.export.formats import get_format
from itagger_lib.export.provenance import provenance
from itagger_lib.ratings.frames import ratings_arrow
from itagger_lib.science.results import latest_science_run, metrics_frame

if TYPE_CHECKING:
    import pyarrow as pa

    from itagger_lib._types import StrPath
    from itagger_lib.context import Context

__all__ = ["export", "export_ratings"]


def export(ctx: Context, out: StrPath, format: str = "parquet", run: int | None = None) -> list[Path]:
    """Write the workspace's data to folder ``out`` in ``format``; returns the files written.

    ``format`` is a registered format (:mod:`~itagger_lib.export.formats`: ``parquet``,
    ``csv`` or ``bn``); ``run`` the science run whose metrics go in (default the newest).
    Every file carries its provenance.
    """
    writer = get_format(format)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    return writer.write(ctx, folder, metrics_frame(ctx, run=run, bins=True))


def _latest_science_run_id(ctx: Context) -> int | None:
    run = latest_science_run(ctx)
    return None if run is None else int(run["id"])


def export_ratings(
    ctx: Context,
    path: StrPath,
    format: str = "parquet",
    ratings: pa.Table | None = None,
    *,
    via: str | None = None,
) -> Path:
    """Write the long-format ratings (:func:`~itagger_lib.ratings.frames.ratings_frame`'s
    columns) to one file.

    Parquet is written batch by batch straight from Arrow
    (:func:`~itagger_lib.ratings.frames.iter_ratings_arrow`, with ``via`` choosing how
    PostgreSQL's COPY rows are read), so reading and writing overlap and memory stays at a
    few batches; its metadata carries the provenance. CSV goes through pandas with a JSON
    sidecar. ``ratings`` (a table already read) is written as it is.
    """
    if format not in FILE_WRITERS:
        raise ArgumentError(f"ratings export format {format!r}: use 'parquet' or 'csv'")
    path = Path(path)
    if format == "csv" or ratings is not None:
        ratings = ratings_arrow(ctx) if ratings is None else ratings
        stamp = provenance(ctx, ratings, _latest_science_run_id(ctx))
        return FILE_WRITERS[format](ratings, path, stamp)
    return stream_ratings(ctx, path, via, _latest_science_run_id(ctx))[0]
