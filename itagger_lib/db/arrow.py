"""Bulk reads from PostgreSQL into Arrow: ``COPY (query) TO STDOUT`` parsed by ``pyarrow.csv``.

The server sends one message per row; a Python driver spends about 2 µs on each inside the
GIL, ``psql``'s C loop about a tenth of that. So a read goes through a ``psql`` process where
one is installed (its password in the child's environment, see :mod:`itagger_lib.db.libpq`)
and over the engine's own psycopg connection otherwise, or when psql fails (psycopg then
raises the database's own error if the query itself is at fault). Times are read in UTC.

The Arrow project's own PostgreSQL driver (ADBC, binary COPY decoded in C++) was measured
as a third reader on the 100k-image benchmark: the server's binary output is ≈ 15 % cheaper
than CSV, but the driver spent ≈ 1 µs of CPU per 28-column row decoding it, ≈ 40 % more
than psql and Arrow's CSV parser together, so the export was slower with it.
"""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from itagger_lib.db.engine import redact_url
from itagger_lib.db.libpq import client_env, client_target, pg_bin
from itagger_lib.errors import ArgumentError

__all__ = ["VIA", "read_arrow", "timestamps_from_hex", "timestamptz_hex"]

VIA = (None, "psql", "psycopg")

# PostgreSQL's binary timestamptz (its ``timestamptz_send``): int64 µs since 2000-01-01 UTC.
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in µs since 1970-01-01
_NIBBLES = np.zeros(256, np.uint8)
_NIBBLES[np.frombuffer(b"0123456789abcdef", np.uint8)] = np.arange(16, dtype=np.uint8)


def timestamptz_hex(column: str) -> str:
    """SQL giving a ``timestamptz`` column as 16 hex digits of its binary form.

    Formatting a time as text (``timestamptz_out``) is the costliest column of a COPY row:
    ≈ 0.15 µs on the server and 30 bytes on the wire, where this is 16 bytes and about half
    the server time. :func:`timestamps_from_hex` decodes it. ``encode`` makes it independent
    of the server's ``bytea_output`` setting.
    """
    return f"encode(timestamptz_send({column}), 'hex')"


def timestamps_from_hex(values: pa.Array | pa.ChunkedArray, name: str = "time") -> pa.Array:
    """Decode :func:`timestamptz_hex` strings to ``timestamp[us, UTC]``, vectorised; nulls kept.

    Infinite times (``'infinity'``, ``'-infinity'``) have no Arrow timestamp: they raise
    :class:`~itagger_lib.errors.ArgumentError` naming ``name``, as a malformed value does.
    """
    import pyarrow.compute as pc

    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    array = array.cast(pa.string())
    valid = None
    if array.null_count:
        valid = pc.is_valid(array).to_numpy(zero_copy_only=False)
        array = pc.fill_null(array, "0" * 16)
    offsets = np.frombuffer(array.buffers()[1], np.int32)[array.offset : array.offset + len(array) + 1]
    if len(array) and not (np.diff(offsets) == 16).all():
        raise ArgumentError(f"{name}: expected 16 hex digits per value (timestamptz_send); got other lengths")
    data = np.frombuffer(array.buffers()[2], np.uint8)[offsets[0] : offsets[-1]].reshape(-1, 16)
    nibbles = _NIBBLES[data]
    raw = np.ascontiguousarray((nibbles[:, ::2] << 4) | nibbles[:, 1::2])
    micros = raw.view(">i8").ravel().astype(np.int64)  # nulls were filled with zeros above
    infinite = (micros == np.iinfo(np.int64).max) | (micros == np.iinfo(np.int64).min)
    if infinite.any():
        raise ArgumentError(
            f"{name}: {int(infinite.sum())} value(s) are 'infinity' or '-infinity', which no export "
            "format can hold; set them to real times in the database"
        )
    micros += _PG_EPOCH_US
    mask = None if valid is None else ~valid
    return pa.array(micros, type=pa.timestamp("us", tz="UTC"), mask=mask)


def read_arrow(
    engine: sa.Engine,
    query: str | sa.sql.expression.ClauseElement,
    params: Mapping[str, Any] | None = None,
    via: str | None = None,
    *,
    column_types: Mapping[str, pa.DataType] | None = None,
    threads: bool = True,
) -> pa.Table:
    """The rows of ``query`` (SQL text with ``:name`` parameters, or a SQLAlchemy statement
    with its own bound values) as an Arrow table.

    ``via``: ``"psql"``, ``"psycopg"`` or ``None`` (psql where installed). ``column_types``
    fixes the Arrow type of named columns (others are inferred). ``threads=False`` parses on
    the calling thread only: for callers that already read several queries at once, where
    Arrow's parser threads only add scheduling (≈ 30 % more CPU per row). Postgres only.
    """
    if via not in VIA:
        raise ArgumentError(f"via={via!r}: use 'psql', 'psycopg' or None (psql where installed)")
    statement = sa.text(query).bindparams(**(params or {})) if isinstance(query, str) else query
    # values inlined by a dialect with named parameters: psycopg's pyformat would double each %
    dialect = postgresql.dialect(paramstyle="named")
    compiled = str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    copy = f"COPY ({compiled}) TO STDOUT WITH (FORMAT csv, HEADER true)"
    psql = pg_bin("psql") if via in (None, "psql") else None
    if via == "psql" and psql is None:
        raise ArgumentError("via psql: no psql found; install postgresql-client or use via='psycopg'")
    types = dict(column_types or {})
    if psql is not None:
        table = _via_psql(engine, psql, copy, types, threads)
        if table is not None:
            return table
    return _parse(_via_psycopg(engine, copy), types, threads)


def _parse(source: Any, column_types: Mapping[str, pa.DataType], threads: bool = True) -> pa.Table:
    import pyarrow.csv as pcsv

    options = pcsv.ConvertOptions(
        column_types=dict(column_types),
        # PostgreSQL writes NULL as an unquoted empty field and nothing else: Arrow's default
        # null spellings would turn a note "n/a", a label "NA" or a float NaN into NULL
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,  # "" is an empty string, an unquoted empty field NULL
        true_values=["t"],
        false_values=["f"],
        check_utf8=False,  # the server sends UTF-8 (client encoding UTF8), already checked
    )
    # 4 MiB blocks: a quarter of the per-block work of the default 1 MiB, same memory order
    read = pcsv.ReadOptions(use_threads=threads, block_size=4 << 20)
    # a quoted value may hold a newline (a rater's note): without this, a block boundary
    # inside one fails the whole read ("CSV parser got out of sync with chunker")
    # ignore_empty_lines=False: a one-column row holding NULL is an empty line, not a gap
    parse = pcsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False)
    return pcsv.read_csv(source, read_options=read, parse_options=parse, convert_options=options)


def _via_psycopg(engine: sa.Engine, copy: str) -> io.BytesIO:
    buffer = io.BytesIO()
    raw: Any = engine.raw_connection()  # the psycopg connection (its COPY API)
    try:
        with raw.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
            cursor.execute("SET client_encoding TO 'UTF8'")  # what the parser takes as checked
            with cursor.copy(copy) as rows:
                for block in rows:
                    buffer.write(block)
        raw.rollback()
    finally:
        raw.close()
    buffer.seek(0)
    return buffer


def _via_psql(
    engine: sa.Engine, psql: str, copy: str, column_types: Mapping[str, pa.DataType], threads: bool
) -> pa.Table | None:
    """``copy`` run by a psql process, its CSV parsed from the pipe; ``None`` if psql failed."""
    url = engine.url
    env = client_env(url, PGTZ="UTC", PGCLIENTENCODING="UTF8", PGAPPNAME="itagger")
    # -w: never prompt for a password (there is no terminal to answer it)
    command = [psql, "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "-d", client_target(url), "-c", copy]
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    table = None
    try:
        table = _parse(process.stdout, column_types, threads)
    except pa.ArrowInvalid:
        pass  # no or partial output: psql failed, said why on stderr
    finally:
        process.stdout.close()
        errors = process.stderr.read().decode(errors="replace").strip()
        status = process.wait()
    if status != 0 or table is None:
        logging.getLogger(__name__).warning(
            "psql could not read from %s (%s); reading over psycopg instead",
            redact_url(url),
            errors or f"exit status {status}",
        )
        return None
    return table
