"""The long ratings in Arrow: their schema, PostgreSQL ``COPY`` by id range, the small tables attached.

Each block of ``ratings`` is read with ``COPY … TO STDOUT`` (:func:`itagger_lib.db.arrow.read_arrow`)
and parsed by Arrow; the image, codebook and VLM columns are not joined in the database
but attached here from the small tables they come from (:func:`dimensions`,
:func:`attach_dimensions`), which halves what the server formats and sends. The readers
that use it are in :mod:`itagger_lib.ratings.frames`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from itagger_lib.db.arrow import read_arrow, timestamps_from_hex, timestamptz_hex

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Engine

__all__ = [
    "COPY_COLUMNS",
    "DIMENSION_COLUMNS",
    "FILE_SCHEMA",
    "NULLABLE_INTS",
    "SCHEMA",
    "attach_dimensions",
    "copy_block",
    "dimensions",
    "lookup",
    "to_frame",
]


# Columns read from ``ratings`` itself; the rest are attached from small tables in Arrow.
# ``rated_at`` travels as the hex of its binary form (half the server's formatting time and
# bytes of a text time), decoded in :func:`copy_block`.
COPY_COLUMNS = (
    "id AS rating_id", "image_id", "attribute", "rater", "source", "value", "value_text", "mode",
    "study_id", "assignment_id", "position", "dwell_ms", "session_id", "is_repeat", "is_gold",
    "repeat_index", "run_id", "vlm_call_id", "codebook_id", "note",
    f"{timestamptz_hex('rated_at')} AS rated_at",
)  # fmt: skip

SCHEMA = pa.schema(
    [
        ("rating_id", pa.int64()),
        ("image_id", pa.int64()),
        ("sha256", pa.string()),
        ("collection", pa.string()),
        ("attribute", pa.string()),
        ("rater", pa.string()),
        ("source", pa.string()),
        ("value", pa.float64()),
        ("value_text", pa.string()),
        ("mode", pa.string()),
        ("study_id", pa.int64()),
        ("assignment_id", pa.int64()),
        ("position", pa.int64()),
        ("dwell_ms", pa.int64()),
        ("session_id", pa.string()),
        ("is_repeat", pa.bool_()),
        ("is_gold", pa.bool_()),
        ("repeat_index", pa.int64()),
        ("run_id", pa.int64()),
        ("vlm_call_id", pa.int64()),
        ("vlm_provider", pa.string()),
        ("vlm_model", pa.string()),
        ("vlm_prompt_version", pa.string()),
        ("codebook_id", pa.int64()),
        ("codebook_name", pa.string()),
        ("codebook_version", pa.string()),
        ("note", pa.string()),
        ("rated_at", pa.timestamp("us", tz="UTC")),
    ]
)
# The columns attached from small tables, in :func:`attach_dimensions`' order.
DIMENSION_COLUMNS = (
    "sha256", "collection", "codebook_name", "codebook_version",
    "vlm_provider", "vlm_model", "vlm_prompt_version",
)  # fmt: skip
# What the Parquet writer is given: the attached columns as dictionaries. The file does not
# store this Arrow schema, so readers get plain strings, as in :data:`SCHEMA`.
FILE_SCHEMA = pa.schema(
    [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in DIMENSION_COLUMNS else f
        for f in SCHEMA
    ]
)
NULLABLE_INTS = ("study_id", "assignment_id", "position", "dwell_ms", "run_id", "vlm_call_id")


def copy_block(
    engine: Engine, query: str, params: Mapping[str, Any], via: str | None, threads: bool
) -> pa.Table:
    """One block of the ratings query, as a table of :data:`SCHEMA` (runs in a worker thread)."""
    types = {f.name: f.type for f in SCHEMA} | {"rated_at": pa.string()}
    block = read_arrow(engine, query, params, via, column_types=types, threads=threads)
    times = timestamps_from_hex(block["rated_at"], name="ratings.rated_at")
    return block.set_column(block.schema.get_field_index("rated_at"), "rated_at", times)


def lookup(
    keys: pa.ChunkedArray, table: pa.Table, key: str, columns: Sequence[str], dictionary: bool = False
) -> list[pa.Array | pa.ChunkedArray]:
    """``table[columns]`` aligned to ``keys`` (a left join on ``key`` that keeps row order).

    ``dictionary=True``: each column as a dictionary array over just the rows of ``table``
    that ``keys`` reach, in any order they were stored (no per-row strings copied; a Parquet
    writer stores the dictionary as its page, so it holds a batch's images, not all of them).
    """
    import pyarrow.compute as pc

    index = pc.index_in(keys, value_set=table[key])
    if not dictionary:
        return [table[column].take(index) for column in columns]
    index = index.combine_chunks()
    reached = pc.unique(index.drop_null())
    indices = pc.index_in(index, value_set=reached).cast(pa.int32())
    arrays = []
    for column in columns:
        values = table[column].combine_chunks().take(reached)
        these = indices
        if values.null_count:  # Parquet takes no null inside a dictionary: null the index
            these = pc.if_else(pc.is_null(values.take(indices)), pa.scalar(None, pa.int32()), indices)
            values = values.fill_null("")
        arrays.append(pa.DictionaryArray.from_arrays(these, values))
    return arrays


def dimensions(engine: Engine, via: str | None = None) -> dict[str, pa.Table]:
    """The small tables whose columns the long format repeats on every rating.

    Each is one chunk with ``string`` (32-bit offsets) text: taking 64-character hashes row
    by row from chunked or ``large_string`` columns is 10-20x slower.
    """
    ids = {"id": pa.int64()}
    text = pa.string()
    tables = {
        "images": read_arrow(
            engine,
            "SELECT id, sha256, collection FROM images",
            via=via,
            column_types={**ids, "sha256": text, "collection": text},
        ),
        "codebooks": read_arrow(
            engine,
            "SELECT id, name, version FROM codebooks",
            via=via,
            column_types={**ids, "name": text, "version": text},
        ),
        "calls": read_arrow(
            engine,
            "SELECT id, provider, model, prompt_version FROM vlm_calls "
            "WHERE id IN (SELECT DISTINCT vlm_call_id FROM ratings WHERE vlm_call_id IS NOT NULL)",
            via=via,
            column_types={**ids, "provider": text, "model": text, "prompt_version": text},
        ),
    }
    return {name: table.combine_chunks() for name, table in tables.items()}


def attach_dimensions(
    core: pa.Table, dimensions: Mapping[str, pa.Table], dictionary: bool = False
) -> pa.Table:
    """Add sha256/collection, codebook name/version and VLM provider/model/prompt in Arrow.

    A table of :data:`SCHEMA`, or with ``dictionary=True`` of :data:`FILE_SCHEMA` (those
    seven columns dictionary-encoded, see :func:`lookup`).
    """
    images = lookup(core["image_id"], dimensions["images"], "id", ("sha256", "collection"), dictionary)
    books = lookup(core["codebook_id"], dimensions["codebooks"], "id", ("name", "version"), dictionary)
    vlm = ("provider", "model", "prompt_version")
    calls = lookup(core["vlm_call_id"], dimensions["calls"], "id", vlm, dictionary)
    extra = dict(zip(DIMENSION_COLUMNS, [*images, *books, *calls], strict=True))
    schema = FILE_SCHEMA if dictionary else SCHEMA
    columns = [extra[f.name] if f.name in extra else core[f.name] for f in schema]
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, schema)], schema=schema)


def to_frame(table: pa.Table) -> pd.DataFrame:
    """A table of :data:`SCHEMA` as pandas, its nullable id columns as ``Int64``."""
    frame = table.to_pandas()
    for column in NULLABLE_INTS:
        frame[column] = frame[column].astype("Int64")
    return frame
