"""The ratings, read: the long format with provenance, per-image statistics, one image's ratings.

One reader for every room that shows or writes ratings: the export and ``ws.ratings()``
(:func:`ratings_frame`, and its Arrow batches for the fast path), the explorer
(:func:`image_statistic`: each image's mode, median or mean by the attribute's level of
measurement), the inspector (:func:`image_ratings`) and the tagging workbench's assisted
mode (:func:`machine_answer`). On PostgreSQL the long format is read with ``COPY``
(:mod:`itagger_lib.ratings.arrow`). Filters that name a rater, attribute or source the
workspace does not have raise :class:`~itagger_lib.errors.UnknownNameError` listing the
known ones (:func:`check_names`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from itagger_lib.codebook.storage import stored_attributes
from itagger_lib.db.models import Rating, RatingMean, VLMCall
from itagger_lib.errors import ArgumentError, UnknownNameError
from itagger_lib.ratings.aggregate import statistic_of
from itagger_lib.ratings.arrow import (
    COPY_COLUMNS,
    FILE_SCHEMA,
    SCHEMA,
    attach_dimensions,
    copy_block,
    dimensions,
    to_frame,
)
from itagger_lib.ratings.recording import SOURCES

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = [
    "RATINGS_QUERY",
    "check_names",
    "image_ratings",
    "image_statistic",
    "iter_ratings_arrow",
    "known_attributes",
    "known_raters",
    "machine_answer",
    "mean_ratings",
    "rated_attributes",
    "ratings_arrow",
    "ratings_frame",
]

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
    ctx: Context,
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

    ``attributes``, ``raters`` and ``sources`` keep only those; a name the workspace does
    not have raises :class:`~itagger_lib.errors.UnknownNameError` listing the known ones.
    A VLM rater is named ``vlm:<provider>/<model>@<prompt version>``, as in every table.
    """
    if ctx.engine.dialect.name == "postgresql":  # the Arrow reader checks the names
        return to_frame(ratings_arrow(ctx, attributes, raters, sources))
    check_names(ctx, attributes, raters, sources)
    query, params = _ratings_query(attributes, raters, sources)
    with ctx.engine.connect() as connection:
        frame = pd.read_sql(sa.text(query), connection, params=params)
    frame["rated_at"] = pd.to_datetime(frame["rated_at"], utc=True)
    for column in ("is_repeat", "is_gold"):
        frame[column] = frame[column].astype(bool)
    return frame


def ratings_arrow(
    ctx: Context,
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
    batches = list(iter_ratings_arrow(ctx, attributes, raters, sources, parallel=parallel, via=via))
    return pa.concat_tables(batches) if batches else SCHEMA.empty_table()


def iter_ratings_arrow(
    ctx: Context,
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
    :func:`itagger_lib.db.arrow.read_arrow`). On SQLite one batch converted from
    :func:`ratings_frame`. Tables follow :data:`~itagger_lib.ratings.arrow.SCHEMA`;
    ``dictionary=True`` gives the attached text columns as dictionary arrays instead
    (:data:`~itagger_lib.ratings.arrow.FILE_SCHEMA`, what the Parquet export writes).
    Unknown names in the filters raise :class:`~itagger_lib.errors.UnknownNameError`.
    """
    if ctx.engine.dialect.name != "postgresql":
        frame = ratings_frame(ctx, attributes, raters, sources)
        table = pa.Table.from_pandas(frame, schema=SCHEMA, preserve_index=False)
        yield table.cast(FILE_SCHEMA) if dictionary else table
        return
    check_names(ctx, attributes, raters, sources)
    where, params = _filters(attributes, raters, sources, prefix="")
    with ctx.engine.connect() as connection:
        low, high = connection.execute(sa.text("SELECT min(id), max(id) FROM ratings")).one()
    if low is None:
        return
    pieces = max(parallel, -(-(high - low + 1) // batch_rows))
    pieces = max(1, min(pieces, high - low + 1))
    edges = [low + (high - low + 1) * k // pieces for k in range(pieces + 1)]
    select = ", ".join(COPY_COLUMNS)
    queries = [
        f"SELECT {select} FROM ratings WHERE id >= {a} AND id < {b}" + (f" AND {where}" if where else "")
        for a, b in itertools.pairwise(edges)
    ]
    threads = parallel < 2  # several streams at once: each parses on its own thread
    with ThreadPoolExecutor(max(1, parallel)) as pool:
        pending = [pool.submit(copy_block, ctx.engine, q, params, via, threads) for q in queries[:parallel]]
        small_tables = dimensions(ctx.engine, via)  # while the first ranges are read
        following = iter(queries[parallel:])
        while pending:
            part = pending.pop(0).result()
            query = next(following, None)
            if query is not None:
                pending.append(pool.submit(copy_block, ctx.engine, query, params, via, threads))
            yield attach_dimensions(part, small_tables, dictionary)


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


def known_raters(ctx: Context) -> list[str]:
    """Every rater with at least one rating, sorted (VLMs as ``vlm:<provider>/<model>@<prompt>``)."""
    with ctx.engine.connect() as connection:
        return sorted(connection.execute(sa.select(Rating.rater).distinct()).scalars())


def known_attributes(ctx: Context) -> list[str]:
    """Every attribute of a stored codebook or with a rating, sorted."""
    return sorted(set(stored_attributes(ctx)) | set(rated_attributes(ctx)))


def check_names(
    ctx: Context,
    attributes: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> None:
    """:class:`~itagger_lib.errors.UnknownNameError` for a filter naming an attribute, rater
    or source the workspace does not have, listing the ones it has."""
    for kind, wanted, known in (
        ("attribute", attributes, known_attributes),
        ("rater", raters, known_raters),
    ):
        if isinstance(wanted, str):
            raise ArgumentError(
                f"{kind}s must be a list of names, got the text {wanted!r}; write [{wanted!r}]"
            )
        if wanted:
            names = known(ctx)
            unknown = [name for name in wanted if name not in set(names)]
            if unknown:
                raise UnknownNameError(kind, unknown, names)
    if sources:
        if isinstance(sources, str):
            raise ArgumentError(
                f"sources must be a list of names, got the text {sources!r}; write [{sources!r}]"
            )
        unknown = [name for name in sources if name not in SOURCES]
        if unknown:
            raise UnknownNameError("source", unknown, SOURCES)


def mean_ratings(ctx: Context, attribute: str) -> pd.Series:
    """Each image's mean human (and imported) rating of ``attribute``; VLM ratings left out.

    The arithmetic mean whatever the attribute's level; :func:`image_statistic` gives the
    statistic of its level. From ``rating_means``, which triggers on ``ratings`` keep current.
    """
    statement = sa.select(RatingMean.image_id, RatingMean.mean).where(
        RatingMean.attribute == attribute, RatingMean.mean.is_not(None)
    )
    with ctx.engine.connect() as connection:
        frame = pd.read_sql(statement, connection, index_col="image_id")
    return frame["mean"]


def image_statistic(ctx: Context, attribute: str) -> pd.Series:
    """Each image's human (and imported) ratings of ``attribute`` as one value, by level of
    measurement: the modal category (nominal; images whose categories tie are left out), the
    median (ordinal) or the mean (interval). The Series' name is the statistic (``mode``,
    ``median``, ``mean``); a nominal mode is the category (its label, or its number).

    Raises
    ------
    UnknownNameError
        ``attribute`` has no codebook entry and no rating.
    ArgumentError
        ``attribute`` is multi-label: no one value stands for an image (see its per-label
        shares in ``ws.table()``).
    """
    attributes = stored_attributes(ctx)
    if attribute not in attributes and attribute not in rated_attributes(ctx):
        raise UnknownNameError("attribute", [attribute], known_attributes(ctx))
    definition = attributes.get(attribute)
    statistic = statistic_of(definition)
    if statistic == "share":
        raise ArgumentError(
            f"attribute {attribute!r} is multi-label: no single value stands for an image; "
            "use the per-label shares of ws.table()"
        )
    column = getattr(RatingMean, statistic)
    statement = sa.select(RatingMean.image_id, column).where(
        RatingMean.attribute == attribute, column.is_not(None)
    )
    with ctx.engine.connect() as connection:
        frame = pd.read_sql(statement, connection, index_col="image_id")
    values = frame[statistic]
    if statistic == "mode" and definition is not None and definition.values:
        values = values.map(lambda code: _category_of_code(definition.values, code))
    return values.rename(statistic)


def _category_of_code(levels: list[int | str], code: float) -> int | str:
    """A stored code's category: a numeric level is its value, a text level its index."""
    if all(isinstance(v, int) for v in levels):
        return int(code)
    index = int(code)
    return levels[index] if 0 <= index < len(levels) else index


def rated_attributes(ctx: Context) -> list[str]:
    """Every attribute with at least one rating, sorted."""
    with ctx.engine.connect() as connection:
        return sorted(connection.execute(sa.select(Rating.attribute).distinct()).scalars())


def image_ratings(ctx: Context, image_id: int) -> pd.DataFrame:
    """Every rating of one image (human, VLM, imported, adjudicated) with VLM rationales,
    and the columns its per-image values need (rating and run ids, repeat flags)."""
    query = (
        sa.select(
            Rating.attribute,
            Rating.rater,
            Rating.source,
            Rating.value,
            Rating.value_text,
            Rating.mode,
            Rating.dwell_ms,
            Rating.rated_at,
            Rating.note,
            VLMCall.rationale,
            Rating.id.label("rating_id"),
            Rating.image_id,
            Rating.is_repeat,
            Rating.repeat_index,
            Rating.run_id,
        )
        .outerjoin(VLMCall, VLMCall.id == Rating.vlm_call_id)
        .where(Rating.image_id == image_id)
        .order_by(Rating.attribute, Rating.source, Rating.rater)
    )
    with ctx.engine.connect() as connection:
        return pd.read_sql(query, connection)


def machine_answer(ctx: Context, image_id: int, attribute: str) -> tuple[float | None, str | None] | None:
    """The newest VLM answer to ``attribute`` for one image as stored ``(value, value_text)``,
    or ``None`` when no model has answered (what an assisted rater is shown).

    On PostgreSQL through ``itagger_machine_answer`` (migration ``0005_roles``): VLM ratings
    are hidden from taggers, who see this answer only for images of an assisted study in
    their own queue."""
    with ctx.engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            row = connection.execute(
                sa.text(
                    "SELECT answer AS value, answer_text AS value_text FROM itagger_machine_answer(:i, :a)"
                ),
                {"i": image_id, "a": attribute},
            ).first()
            return None if row is None else (row.value, row.value_text)
        row = connection.execute(
            sa.select(Rating.value, Rating.value_text)
            .where(Rating.image_id == image_id, Rating.attribute == attribute, Rating.source == "vlm")
            .order_by(Rating.id.desc())
            .limit(1)
        ).first()
    return None if row is None else (row.value, row.value_text)
