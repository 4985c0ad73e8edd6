"""Writing one frame to one file with its provenance, and the long ratings streamed to Parquet.

Parquet files carry the provenance in their metadata, CSV files in a ``<file>.json``
sidecar (:mod:`~itagger_lib.export.provenance`). :func:`stream_ratings` writes the long
ratings batch by batch as they are read, so reading and writing overlap and memory holds a
few batches, not the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from itagger_lib.export.csv_safe import csv_safe
from itagger_lib.export.provenance import provenance_of, provenance_text
from itagger_lib.ratings.arrow import FILE_SCHEMA, SCHEMA, to_frame
from itagger_lib.ratings.frames import iter_ratings_arrow

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = ["FILE_WRITERS", "RATING_WRITE", "stream_ratings", "write_csv", "write_parquet"]

# Row-group min/max statistics for the columns a reader filters on; skipping them for long
# or repeated strings (sha256, notes, names) saves a third of the Parquet write time.
_UNSTATED = {
    "sha256", "collection", "source", "mode", "value_text", "session_id", "note",
    "codebook_name", "codebook_version", "vlm_provider", "vlm_model", "vlm_prompt_version",
}  # fmt: skip
_STATISTICS = [f.name for f in SCHEMA if f.name not in _UNSTATED]
# Dictionary-encoded columns: the strings and the numbers with few distinct values. Hashing
# unique ids and times only to give up on their dictionary cost a fifth of the write, and the
# file is no larger.
_DICTIONARY = [f.name for f in SCHEMA if pa.types.is_string(f.type)] + [
    "image_id", "value", "study_id", "run_id", "codebook_id",
]  # fmt: skip
# store_schema=False: no Arrow schema in the file, whose Parquet types read back as
# :data:`SCHEMA` (strings, int64, bool, UTC microseconds) however the writer was fed.
RATING_WRITE: dict[str, Any] = {
    "write_statistics": _STATISTICS,
    "use_dictionary": _DICTIONARY,
    "store_schema": False,
}


def write_parquet(frame: pd.DataFrame | pa.Table, path: Path, provenance: dict[str, Any]) -> Path:
    """Write ``frame`` to Parquet ``path`` with its provenance in the file's metadata.

    A table of the long ratings' :data:`~itagger_lib.ratings.arrow.SCHEMA` gets
    :data:`RATING_WRITE`'s options; a DataFrame keeps a named index as a column.
    """
    text = provenance_text(provenance, path)
    arrow = (
        frame
        if isinstance(frame, pa.Table)
        else pa.Table.from_pandas(frame, preserve_index=frame.index.name is not None)
    )
    metadata = {**(arrow.schema.metadata or {}), b"itagger": text.encode()}
    options = RATING_WRITE if arrow.schema.equals(SCHEMA, check_metadata=False) else {}
    arrow = arrow.replace_schema_metadata(metadata)
    with pq.ParquetWriter(path, arrow.schema, **options) as writer:
        writer.write_table(arrow)
        writer.add_key_value_metadata({"itagger": text})  # also where no Arrow schema is stored
    return path


def write_csv(frame: pd.DataFrame | pa.Table, path: Path, provenance: dict[str, Any]) -> Path:
    """Write ``frame`` to CSV ``path`` (a named index as a column) and its provenance beside it
    in ``<path>.json``; text cells a spreadsheet would run as formulas get a leading ``'``
    (:mod:`~itagger_lib.export.csv_safe`)."""
    if isinstance(frame, pa.Table):
        frame = to_frame(frame)
    csv_safe(frame).to_csv(path, index=frame.index.name is not None)
    Path(f"{path}.json").write_text(provenance_text(provenance, path) + "\n", encoding="utf-8")
    return path


#: One frame to one file, by format name (what :func:`~itagger_lib.export.write.export_ratings` takes).
FILE_WRITERS: dict[str, Callable[[pd.DataFrame | pa.Table, Path, dict[str, Any]], Path]] = {
    "parquet": write_parquet,
    "csv": write_csv,
}


def stream_ratings(
    ctx: Context, path: Path, via: str | None, science_run: int | None, keep: Sequence[str] = ()
) -> tuple[Path, dict[str, Any], pa.Table | None]:
    """Write the long ratings to Parquet ``path`` batch by batch (:func:`iter_ratings_arrow`).

    Returns the path, the provenance written into the file, and the ``keep`` columns of
    every batch as one table (``None`` when ``keep`` is empty): what a caller needs from the
    ratings besides the file, without reading them twice or holding all 28 columns.
    """
    import pyarrow.compute as pc

    codebooks: set[int] = set()
    runs: set[int] = set()
    kept: list[pa.Table] = []
    partial = path.with_name(f".{path.name}.partial")
    try:
        with pq.ParquetWriter(partial, FILE_SCHEMA, **RATING_WRITE) as writer:
            for batch in iter_ratings_arrow(ctx, via=via, dictionary=True):
                writer.write_table(batch)
                codebooks.update(v for v in pc.unique(batch["codebook_id"]).to_pylist() if v is not None)
                runs.update(v for v in pc.unique(batch["run_id"]).to_pylist() if v is not None)
                if keep:
                    kept.append(batch.select(list(keep)))
            provenance = provenance_of(ctx, codebooks, runs, science_run)
            writer.add_key_value_metadata({"itagger": provenance_text(provenance, path)})
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    if not keep:
        return path, provenance, None
    schema = pa.schema([SCHEMA.field(name) for name in keep])
    table = pa.concat_tables(kept).cast(schema) if kept else schema.empty_table()
    return path, provenance, table
