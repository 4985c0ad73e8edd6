"""Tidy exports: ratings in long format, one table per image, Parquet/CSV and BN files.

Every written file carries its provenance (package version, run ids, codebook versions,
time of export): Parquet in its key-value metadata under ``itagger``, CSV in a sidecar
``<file>.json``. No database URL or secret is written.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from itagger_lib._version import __version__
from itagger_lib.db.arrow import read_arrow, timestamps_from_hex, timestamptz_hex
from itagger_lib.errors import ConfigError
from itagger_lib.review.agreement import first_presentations, vlm_raters

__all__ = [
    "FORMATS",
    "bn_frame",
    "export",
    "export_ratings",
    "ratings_arrow",
    "ratings_frame",
    "read_provenance",
    "table",
]

FORMATS = ("parquet", "csv", "bn")
STATES = ("low", "mid", "high")

RATINGS_QUERY = """
SELECT r.id AS rating_id, r.image_id, i.sha256, i.collection, r.attribute, r.rater, r.source,
       r.value, r.value_text, r.mode, r.study_id, r.assignment_id, r.position, r.dwell_ms,
       r.session_id, r.is_repeat, r.is_gold, r.repeat_index, r.run_id, r.vlm_call_id,
       v.provider AS vlm_provider, v.model AS vlm_model, v.prompt_version AS vlm_prompt_version,
       r.codebook_id, c.name AS codebook_name, c.version AS codebook_version, r.note, r.rated_at
FROM ratings r
JOIN images i ON i.id = r.image_id
JOIN codebooks c ON c.id = r.codebook_id
LEFT JOIN vlm_calls v ON v.id = r.vlm_call_id
"""


def ratings_frame(
    ws: Any,
    attributes: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> pd.DataFrame:
    """All ratings in long format (image × rater × attribute × value) with provenance.

    Columns: rating_id, image_id, sha256, collection, attribute, rater, source (human, vlm,
    import, adjudication), value, value_text, mode, study_id, assignment_id, position,
    dwell_ms, session_id, is_repeat, is_gold, repeat_index, run_id, vlm_call_id,
    vlm_provider, vlm_model, vlm_prompt_version, codebook_id, codebook_name,
    codebook_version, note, rated_at (UTC). Ordered by rating id.
    """
    if ws.engine.dialect.name == "postgresql":
        return _arrow_to_frame(ratings_arrow(ws, attributes, raters, sources))
    query, params = _ratings_query(attributes, raters, sources)
    with ws.engine.connect() as connection:
        frame = pd.read_sql(sa.text(query), connection, params=params)
    frame["rated_at"] = pd.to_datetime(frame["rated_at"], utc=True)
    for column in ("is_repeat", "is_gold"):
        frame[column] = frame[column].astype(bool)
    return frame


def ratings_arrow(
    ws: Any,
    attributes: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    *,
    parallel: int = 2,
    via: str | None = None,
) -> pa.Table:
    """:func:`ratings_frame` as an Arrow table (the export's fast path, no pandas).

    The batches of :func:`iter_ratings_arrow`, concatenated.
    """
    batches = list(iter_ratings_arrow(ws, attributes, raters, sources, parallel=parallel, via=via))
    return pa.concat_tables(batches) if batches else _SCHEMA.empty_table()


def iter_ratings_arrow(
    ws: Any,
    attributes: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    *,
    parallel: int = 2,
    batch_rows: int = 250_000,
    via: str | None = None,
    dictionary: bool = False,
) -> Iterator[pa.Table]:
    """The long-format ratings as Arrow tables of about ``batch_rows`` rows, in rating order.

    On PostgreSQL each batch is one id range read with ``COPY … TO STDOUT`` and parsed by
    Arrow; ``parallel`` ranges are read at once (one server process each) while the caller
    consumes earlier batches, so memory holds a few batches, not the whole table. The image,
    codebook and VLM columns are attached in Arrow from the small tables they come from.
    ``via`` picks how the COPY rows are read (``"psql"`` or ``"psycopg"``, see
    :func:`itagger_lib.db.arrow.read_arrow`). On SQLite one batch converted from :func:`ratings_frame`.
    Tables follow :data:`_SCHEMA`; ``dictionary=True`` gives the attached text columns as
    dictionary arrays instead (:data:`_FILE_SCHEMA`, what the Parquet export writes).
    """
    if ws.engine.dialect.name != "postgresql":
        frame = ratings_frame(ws, attributes, raters, sources)
        table = pa.Table.from_pandas(frame, schema=_SCHEMA, preserve_index=False)
        yield table.cast(_FILE_SCHEMA) if dictionary else table
        return
    where, params = _filters(attributes, raters, sources, prefix="")
    with ws.engine.connect() as connection:
        low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM ratings")).one()
    if low is None:
        return
    pieces = max(parallel, -(-(high - low + 1) // batch_rows))
    pieces = max(1, min(pieces, high - low + 1))
    edges = [low + (high - low + 1) * k // pieces for k in range(pieces + 1)]
    select = ", ".join(_RATING_COLUMNS)
    queries = [
        f"SELECT {select} FROM ratings WHERE id >= {a} AND id < {b}" + (f" AND {where}" if where else "")
        for a, b in itertools.pairwise(edges)
    ]
    threads = parallel < 2  # several streams at once: each parses on its own thread
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        pending = [pool.submit(_copy_ratings, ws, q, params, via, threads) for q in queries[:parallel]]
        dimensions = _dimensions(ws, via)  # while the first ranges are read
        following = iter(queries[parallel:])
        while pending:
            part = pending.pop(0).result()
            query = next(following, None)
            if query is not None:
                pending.append(pool.submit(_copy_ratings, ws, query, params, via, threads))
            yield _attach_dimensions(part, dimensions, dictionary)


# Columns read from ``ratings`` itself; the rest are attached from small tables in Arrow.
# ``rated_at`` travels as the hex of its binary form (half the server's formatting time and
# bytes of a text time), decoded in :func:`_copy_ratings`.
_RATING_COLUMNS = (
    "id AS rating_id", "image_id", "attribute", "rater", "source", "value", "value_text", "mode",
    "study_id", "assignment_id", "position", "dwell_ms", "session_id", "is_repeat", "is_gold",
    "repeat_index", "run_id", "vlm_call_id", "codebook_id", "note",
    f"{timestamptz_hex('rated_at')} AS rated_at",
)  # fmt: skip

_SCHEMA = pa.schema(
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
# The columns attached from small tables, in :func:`_attach_dimensions`' order.
_DIMENSION_COLUMNS = (
    "sha256", "collection", "codebook_name", "codebook_version",
    "vlm_provider", "vlm_model", "vlm_prompt_version",
)  # fmt: skip
# What the Parquet writer is given: the attached columns as dictionaries. The file does not
# store this Arrow schema, so readers get plain strings, as in :data:`_SCHEMA`.
_FILE_SCHEMA = pa.schema(
    [
        pa.field(f.name, pa.dictionary(pa.int32(), f.type)) if f.name in _DIMENSION_COLUMNS else f
        for f in _SCHEMA
    ]
)
_NULLABLE_INTS = ("study_id", "assignment_id", "position", "dwell_ms", "run_id", "vlm_call_id")
# Row-group min/max statistics for the columns a reader filters on; skipping them for long
# or repeated strings (sha256, notes, names) saves a third of the Parquet write time.
_UNSTATED = {
    "sha256", "collection", "source", "mode", "value_text", "session_id", "note",
    "codebook_name", "codebook_version", "vlm_provider", "vlm_model", "vlm_prompt_version",
}  # fmt: skip
_RATING_STATISTICS = [f.name for f in _SCHEMA if f.name not in _UNSTATED]
# Dictionary-encoded columns: the strings and the numbers with few distinct values. Hashing
# unique ids and times only to give up on their dictionary cost a fifth of the write, and the
# file is no larger.
_DICTIONARY = [f.name for f in _SCHEMA if pa.types.is_string(f.type)] + [
    "image_id", "value", "study_id", "run_id", "codebook_id",
]  # fmt: skip
# store_schema=False: no Arrow schema in the file, whose Parquet types read back as
# :data:`_SCHEMA` (strings, int64, bool, UTC microseconds) however the writer was fed.
_RATING_WRITE: dict[str, Any] = {
    "write_statistics": _RATING_STATISTICS,
    "use_dictionary": _DICTIONARY,
    "store_schema": False,
}


def _filters(
    attributes: Sequence[str] | None,
    raters: Sequence[str] | None,
    sources: Sequence[str] | None,
    prefix: str = "r.",
) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for column, values in (("attribute", attributes), ("rater", raters), ("source", sources)):
        if values is not None:
            names = [f"{column}_{i}" for i in range(len(values))]
            clauses.append(f"{prefix}{column} IN ({', '.join(':' + n for n in names)})" if names else "1 = 0")
            params.update(dict(zip(names, values)))
    return " AND ".join(clauses), params


def _ratings_query(
    attributes: Sequence[str] | None, raters: Sequence[str] | None, sources: Sequence[str] | None
) -> tuple[str, dict[str, Any]]:
    where, params = _filters(attributes, raters, sources)
    return RATINGS_QUERY + (f" WHERE {where}" if where else "") + " ORDER BY r.id", params


def _copy_ratings(ws: Any, query: str, params: Mapping[str, Any], via: str | None, threads: bool) -> pa.Table:
    """One block of the ratings query, as a table of :data:`_SCHEMA` (runs in a worker thread)."""
    types = {f.name: f.type for f in _SCHEMA} | {"rated_at": pa.string()}
    block = read_arrow(ws.engine, query, params, via, column_types=types, threads=threads)
    times = timestamps_from_hex(block["rated_at"], name="ratings.rated_at")
    return block.set_column(block.schema.get_field_index("rated_at"), "rated_at", times)


def _lookup(
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


def _dimensions(ws: Any, via: str | None = None) -> dict[str, pa.Table]:
    """The small tables whose columns the long format repeats on every rating.

    Each is one chunk with ``string`` (32-bit offsets) text: taking 64-character hashes row
    by row from chunked or ``large_string`` columns is 10-20x slower.
    """
    ids = {"id": pa.int64()}
    text = pa.string()
    tables = {
        "images": read_arrow(
            ws.engine,
            "SELECT id, sha256, collection FROM images",
            via=via,
            column_types={**ids, "sha256": text, "collection": text},
        ),
        "codebooks": read_arrow(
            ws.engine,
            "SELECT id, name, version FROM codebooks",
            via=via,
            column_types={**ids, "name": text, "version": text},
        ),
        "calls": read_arrow(
            ws.engine,
            "SELECT id, provider, model, prompt_version FROM vlm_calls "
            "WHERE id IN (SELECT DISTINCT vlm_call_id FROM ratings WHERE vlm_call_id IS NOT NULL)",
            via=via,
            column_types={**ids, "provider": text, "model": text, "prompt_version": text},
        ),
    }
    return {name: table.combine_chunks() for name, table in tables.items()}


def _attach_dimensions(
    core: pa.Table, dimensions: Mapping[str, pa.Table], dictionary: bool = False
) -> pa.Table:
    """Add sha256/collection, codebook name/version and VLM provider/model/prompt in Arrow.

    A table of :data:`_SCHEMA`, or with ``dictionary=True`` of :data:`_FILE_SCHEMA` (those
    seven columns dictionary-encoded, see :func:`_lookup`).
    """
    images = _lookup(core["image_id"], dimensions["images"], "id", ("sha256", "collection"), dictionary)
    books = _lookup(core["codebook_id"], dimensions["codebooks"], "id", ("name", "version"), dictionary)
    vlm = ("provider", "model", "prompt_version")
    calls = _lookup(core["vlm_call_id"], dimensions["calls"], "id", vlm, dictionary)
    extra = dict(zip(_DIMENSION_COLUMNS, [*images, *books, *calls], strict=True))
    schema = _FILE_SCHEMA if dictionary else _SCHEMA
    columns = [extra[f.name] if f.name in extra else core[f.name] for f in schema]
    return pa.Table.from_arrays([c.cast(f.type) for c, f in zip(columns, schema)], schema=schema)


def _arrow_to_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    for column in _NULLABLE_INTS:
        frame[column] = frame[column].astype("Int64")
    return frame


def _rating_means(ratings: pd.DataFrame) -> pd.DataFrame:
    """Per image: ``rating.<attribute>`` (mean of human/import first presentations, or the
    adjudicated value where one exists) and ``vlm.<attribute>`` (mean of VLM ratings)."""
    if ratings.empty:
        return pd.DataFrame()
    first = first_presentations(ratings)
    vlm = (first["source"] == "vlm") | vlm_raters(first["rater"])
    adjudicated = first[first["source"] == "adjudication"]
    people = first[~vlm & (first["source"] != "adjudication")]
    human = people.pivot_table(index="image_id", columns="attribute", values="value", aggfunc="mean")
    if not adjudicated.empty:
        decided = adjudicated.pivot_table(
            index="image_id", columns="attribute", values="value", aggfunc="last"
        )
        human = decided.combine_first(human)
    machine = first[vlm].pivot_table(index="image_id", columns="attribute", values="value", aggfunc="mean")
    return human.add_prefix("rating.").join(machine.add_prefix("vlm."), how="outer")


def table(
    ws: Any, run: int | None = None, bins: bool = True, ratings: pa.Table | pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per image: image facts, science metrics (with bins) and mean ratings.

    Metrics come from :func:`itagger_lib.science.runner.metrics_frame` (newest science run,
    or ``run``); ratings from :func:`_rating_means` (``ratings`` when given, so an export
    reads them once). ``attrs`` holds the science run id.
    """
    from itagger_lib.science.runner import metrics_frame

    metrics = metrics_frame(ws, run=run, bins=bins)
    return _table(ws, metrics, ratings_arrow(ws) if ratings is None else ratings)


# The ratings' columns the per-image means need.
_MEANS_COLUMNS = ("image_id", "attribute", "rater", "source", "value", "is_repeat", "repeat_index")


def _table(ws: Any, metrics: pd.DataFrame, ratings: pa.Table | pd.DataFrame) -> pd.DataFrame:
    """:func:`table` from the metrics frame and the ratings (at least :data:`_MEANS_COLUMNS`)."""
    query = "SELECT id AS image_id, sha256, source_name, collection, width, height FROM images"
    if ws.engine.dialect.name == "postgresql":
        text = pa.string()
        types = {"image_id": pa.int64(), "width": pa.int64(), "height": pa.int64()}
        types |= {"sha256": text, "source_name": text, "collection": text}
        images = read_arrow(ws.engine, query, column_types=types).to_pandas().set_index("image_id")
    else:
        with ws.engine.connect() as connection:
            images = pd.read_sql(sa.text(query), connection).set_index("image_id")
    if isinstance(ratings, pa.Table):
        ratings = ratings.select(list(_MEANS_COLUMNS)).to_pandas()
    joined = images.join(metrics, how="left").join(_rating_means(ratings), how="left")
    joined.attrs.update(metrics.attrs)
    return joined.sort_index()


def bn_frame(
    per_image: pd.DataFrame, cut_points: Mapping[str, Sequence[float]]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Discretise a per-image table into low/mid/high states for Bayesian-network modelling.

    ``x <= low`` → low, ``low < x <= high`` → mid, ``x > high`` → high (as the science
    bins). Columns with a stored cut point use it; other numeric columns (``rating.*``,
    ``vlm.*``, metrics without stored cut points) get tertile cut points computed here, and
    the variable says so (``cut_source``).

    Returns
    -------
    (states, variables)
        ``states``: image × variable, values low/mid/high (empty where missing);
        ``variables``: one dict per variable: name, source (metric, rating, vlm),
        states, cut_points, cut_source (stored, tertiles).
    """
    columns = [
        c
        for c in per_image.columns
        if pd.api.types.is_numeric_dtype(per_image[c])
        and not c.startswith(("bin.", "meta."))
        and c not in ("width", "height")
        and per_image[c].notna().any()
    ]
    states = pd.DataFrame(index=per_image.index)
    variables: list[dict[str, Any]] = []
    for column in columns:
        values = per_image[column].astype(float)
        if column in cut_points:
            low, high = (float(v) for v in cut_points[column])
            origin = "stored"
        else:
            low, high = (float(v) for v in np.nanquantile(values, [1 / 3, 2 / 3]))
            origin = "tertiles"
        state = np.where(values <= low, "low", np.where(values <= high, "mid", "high"))
        states[column] = pd.Series(state, index=values.index).where(values.notna(), "")
        source = column.split(".", 1)[0] if column.startswith(("rating.", "vlm.")) else "metric"
        variables.append(
            {
                "name": column,
                "source": source,
                "states": list(STATES),
                "cut_points": [low, high],
                "cut_source": origin,
            }
        )
    return states, variables


def _provenance(ws: Any, ratings: pa.Table, science_run: Any) -> dict[str, Any]:
    import pyarrow.compute as pc

    used = {int(v) for v in pc.unique(ratings["codebook_id"]).to_pylist() if v is not None}
    run_ids = {int(v) for v in pc.unique(ratings["run_id"]).to_pylist() if v is not None}
    return _provenance_of(ws, used, run_ids, science_run)


def _provenance_of(ws: Any, codebook_ids: set[int], run_ids: set[int], science_run: Any) -> dict[str, Any]:
    with ws.engine.connect() as connection:
        codebooks = pd.read_sql(
            sa.text("SELECT id, name, version, content_hash FROM codebooks ORDER BY id"), connection
        )
    run_ids = set(run_ids)
    if science_run is not None:
        run_ids.add(int(science_run))
    return {
        "package": "image-tagger",
        "package_version": __version__,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "science_run_id": None if science_run is None else int(science_run),
        "run_ids": sorted(run_ids),
        "codebooks": [
            {"id": int(row.id), "name": row.name, "version": row.version, "content_hash": row.content_hash}
            for row in codebooks.itertuples()
            if int(row.id) in codebook_ids
        ],
    }


def _write(frame: pd.DataFrame | pa.Table, path: Path, kind: str, provenance: Mapping[str, Any]) -> Path:
    text = json.dumps({**provenance, "file": path.name}, sort_keys=True)
    if kind == "parquet":
        arrow = (
            frame
            if isinstance(frame, pa.Table)
            else pa.Table.from_pandas(frame, preserve_index=frame.index.name is not None)
        )
        metadata = {**(arrow.schema.metadata or {}), b"itagger": text.encode()}
        options = _RATING_WRITE if arrow.schema.equals(_SCHEMA, check_metadata=False) else {}
        arrow = arrow.replace_schema_metadata(metadata)
        with pq.ParquetWriter(path, arrow.schema, **options) as writer:
            writer.write_table(arrow)
            writer.add_key_value_metadata({"itagger": text})  # also where no Arrow schema is stored
    else:
        if isinstance(frame, pa.Table):
            frame = _arrow_to_frame(frame)
        frame.to_csv(path, index=frame.index.name is not None)
        Path(f"{path}.json").write_text(text + "\n", encoding="utf-8")
    return path


def export_ratings(
    ws: Any,
    path: str | os.PathLike[str],
    format: str = "parquet",
    ratings: pa.Table | None = None,
    *,
    via: str | None = None,
) -> Path:
    """Write the long-format ratings (:func:`ratings_frame`'s columns) to one file.

    Parquet is written batch by batch straight from Arrow (:func:`iter_ratings_arrow`, with
    ``via`` choosing how PostgreSQL's COPY rows are read), so reading and writing overlap and
    memory stays at a few batches; its metadata carries the provenance. CSV goes through
    pandas with a JSON sidecar.
    """
    if format not in ("parquet", "csv"):
        raise ConfigError(f"ratings export format {format!r}: use 'parquet' or 'csv'")
    path = Path(path)
    if format == "csv" or ratings is not None:
        ratings = ratings_arrow(ws) if ratings is None else ratings
        return _write(ratings, path, format, _provenance(ws, ratings, _latest_science_run_id(ws)))
    return _stream_ratings(ws, path, via, _latest_science_run_id(ws))[0]


def _stream_ratings(
    ws: Any, path: Path, via: str | None, science_run: Any, keep: Sequence[str] = ()
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
        with pq.ParquetWriter(partial, _FILE_SCHEMA, **_RATING_WRITE) as writer:
            for batch in iter_ratings_arrow(ws, via=via, dictionary=True):
                writer.write_table(batch)
                codebooks.update(v for v in pc.unique(batch["codebook_id"]).to_pylist() if v is not None)
                runs.update(v for v in pc.unique(batch["run_id"]).to_pylist() if v is not None)
                if keep:
                    kept.append(batch.select(list(keep)))
            provenance = _provenance_of(ws, codebooks, runs, science_run)
            text = json.dumps({**provenance, "file": path.name}, sort_keys=True)
            writer.add_key_value_metadata({"itagger": text})
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    if not keep:
        return path, provenance, None
    schema = pa.schema([_SCHEMA.field(name) for name in keep])
    table = pa.concat_tables(kept).cast(schema) if kept else schema.empty_table()
    return path, provenance, table


def _latest_science_run_id(ws: Any) -> int | None:
    from itagger_lib.explore import latest_science_run

    run = latest_science_run(ws)
    return None if run is None else int(run["id"])


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance stored with an exported file (Parquet metadata or CSV sidecar)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return dict(json.loads(pq.read_metadata(path).metadata[b"itagger"]))
    return dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))


def export(
    ws: Any, out: str | os.PathLike[str], format: str = "parquet", run: int | None = None
) -> list[Path]:
    """Write the workspace's data to folder ``out``; returns the files written.

    * ``parquet`` / ``csv``: ``ratings.<ext>`` (long, :func:`ratings_frame`) and
      ``table.<ext>`` (per image, :func:`table`);
    * ``bn``: ``bn.csv`` (image × discretised variable, see :func:`bn_frame`) and
      ``bn_codebook.json`` (each variable, its states, cut points and source).

    Every file carries the provenance described in the module docstring.
    """
    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; use one of {', '.join(FORMATS)}")
    from itagger_lib.science.runner import metrics_frame

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    metrics = metrics_frame(ws, run=run, bins=True)
    if format == "parquet":  # the ratings read once, streamed to the file; the means kept
        path, provenance, kept = _stream_ratings(
            ws, folder / "ratings.parquet", None, metrics.attrs.get("run_id"), keep=_MEANS_COLUMNS
        )
        assert kept is not None
        return [path, _write(_table(ws, metrics, kept), folder / "table.parquet", format, provenance)]
    ratings = ratings_arrow(ws)
    per_image = _table(ws, metrics, ratings)
    provenance = _provenance(ws, ratings, per_image.attrs.get("run_id"))
    if format == "csv":
        return [
            _write(ratings, folder / f"ratings.{format}", format, provenance),
            _write(per_image, folder / f"table.{format}", format, provenance),
        ]
    cut_points = _stored_cut_points(ws, per_image.attrs.get("run_id"))
    states, variables = bn_frame(per_image, cut_points)
    written = _write(states, folder / "bn.csv", "csv", provenance)
    codebook = folder / "bn_codebook.json"
    codebook.write_text(json.dumps({**provenance, "variables": variables}, indent=2) + "\n", encoding="utf-8")
    return [written, codebook]


def _stored_cut_points(ws: Any, run_id: Any) -> dict[str, list[float]]:
    if run_id is None:
        return {}
    with ws.engine.connect() as connection:
        details = connection.execute(
            sa.text("SELECT details FROM runs WHERE id = :id"), {"id": int(run_id)}
        ).scalar()
    if isinstance(details, str):
        details = json.loads(details)
    return dict((details or {}).get("cut_points") or {})
