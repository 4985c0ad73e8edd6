"""The PostgreSQL COPY fast path of ratings_frame returns what read_sql returns."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
import sqlalchemy as sa

from itagger_lib.db.models import Codebook, Rating, utcnow
from itagger_lib.errors import ConfigError
from itagger_lib.ratings.frames import RATINGS_QUERY, ratings_arrow, ratings_frame


@pytest.mark.postgres
def test_copy_path_equals_read_sql(pg_url: str, tmp_path, sample_dir) -> None:  # type: ignore[no-untyped-def]
    from itagger_lib import Workspace

    ws = Workspace(database_url=pg_url, store=tmp_path / "s", home=tmp_path)
    ws.ingest(sample_dir, progress=False)
    with ws.engine.begin() as connection:
        codebook_id = connection.execute(
            sa.insert(Codebook).values(
                name="cb",
                version="1.2",
                content_hash="h",
                source_text="",
                definition={},
                created_at=utcnow(),
                created_by="t",
            )
        ).inserted_primary_key[0]
        connection.execute(
            sa.insert(Rating),
            [
                {
                    "image_id": 1,
                    "attribute": "order",
                    "codebook_id": codebook_id,
                    "rater": "a",
                    "source": "human",
                    "value": 3.0,
                    "dwell_ms": 812,
                    "position": 4,
                    "is_repeat": True,
                    "note": 'says "hi", then\nleaves – schön, ½',
                    "value_text": None,
                    "rated_at": utcnow(),
                },
                {
                    "image_id": 2,
                    "attribute": "style",
                    "codebook_id": codebook_id,
                    "rater": "b",
                    "source": "import",
                    "value": None,
                    "value_text": "brutalist, late",
                    "dwell_ms": None,
                    "position": None,
                    "is_repeat": False,
                    "note": "",
                    "rated_at": utcnow(),
                },
            ],
        )
    fast = ratings_frame(ws)
    # psql's pipe and psycopg's connection give the same table (UTF-8, UTC, quoting, NULLs)
    assert ratings_arrow(ws, via="psql").equals(ratings_arrow(ws, via="psycopg"))
    # three COPY ranges at once give the same table, in rating order
    assert ratings_arrow(ws, parallel=3).equals(ratings_arrow(ws, parallel=1))
    assert ratings_arrow(ws, raters=["b"])["rater"].to_pylist() == ["b"]
    with ws.engine.connect() as connection:
        slow = pd.read_sql(sa.text(RATINGS_QUERY + " ORDER BY r.id"), connection)
    assert list(fast.columns) == list(slow.columns)
    assert fast.loc[0, "note"] == 'says "hi", then\nleaves – schön, ½'
    assert fast.loc[1, "value_text"] == "brutalist, late"
    assert fast.loc[1, "note"] == "" and slow.loc[1, "note"] == ""  # empty string is not NULL
    pd.testing.assert_frame_equal(
        fast.drop(columns=["rated_at"]).astype(object).where(fast.notna(), None),
        slow.drop(columns=["rated_at"]).astype(object).where(slow.notna(), None),
        check_dtype=False,
    )
    assert bool(fast.loc[0, "is_repeat"]) is True and bool(fast.loc[1, "is_repeat"]) is False
    assert fast.loc[0, "dwell_ms"] == 812 and pd.isna(fast.loc[1, "dwell_ms"])
    assert pd.isna(fast.loc[1, "value"]) and fast.loc[0, "value"] == 3.0
    assert fast["codebook_version"].tolist() == ["1.2", "1.2"]
    assert fast["rated_at"].dt.tz is not None
    assert list(fast["rated_at"]) == list(pd.to_datetime(slow["rated_at"], utc=True))
    ws.close()


@pytest.mark.postgres
def test_a_failing_psql_falls_back_to_psycopg(pg_url: str, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """psql that cannot run the COPY is retried over psycopg, which names the real fault."""
    import psycopg

    from itagger_lib import Workspace
    from itagger_lib.db.arrow import read_arrow

    # a password in the URL (trust auth ignores it) must reach neither the log nor an error
    url = sa.make_url(pg_url).set(password="s3cret-pw").render_as_string(hide_password=False)
    ws = Workspace(database_url=url, store=tmp_path / "s", home=tmp_path)
    with pytest.raises(psycopg.errors.UndefinedColumn, match="no_such_column") as raised:
        read_arrow(ws.engine, "SELECT no_such_column FROM ratings", {})
    assert "reading over psycopg instead" in caplog.text and "no_such_column" in caplog.text
    assert "s3cret-pw" not in caplog.text and "s3cret-pw" not in str(raised.value)
    assert read_arrow(ws.engine, "SELECT count(*) AS rating_id FROM ratings", {}, via="psql").num_rows == 1
    # SQL with % and a parameter holding one reach the server as written, on both readers
    for via in ("psql", "psycopg"):
        for threads in (True, False):
            table = read_arrow(
                ws.engine, "SELECT 7 % 4 AS r, :p AS s, 'a%b' LIKE 'a%' AS l", {"p": "50%"},
                via=via, threads=threads,
            )  # fmt: skip
            assert table.to_pylist() == [{"r": 3, "s": "50%", "l": True}], (via, threads)
    with pytest.raises(ConfigError, match="via"):
        read_arrow(ws.engine, "SELECT 1", {}, via="odbc")
    ws.close()


@pytest.fixture
def engine(pg_url: str) -> Iterator[sa.Engine]:
    engine = sa.create_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.mark.postgres
def test_values_with_newlines_survive_block_boundaries(engine: sa.Engine) -> None:
    """Multi-line text (raters' notes) over many parser blocks reads back whole, both ways."""
    from itagger_lib.db.arrow import read_arrow

    # ≈ 12 MB of CSV: several 4 MiB parser blocks, each boundary likely inside a quoted value
    query = (
        "SELECT g AS id, repeat('first line, \"quoted\"' || chr(10) || 'second; ', 16) || g AS note "
        "FROM generate_series(1, 30000) AS g"
    )
    expected = ['first line, "quoted"\nsecond; ' * 16 + str(i) for i in range(1, 30001)]
    for via in ("psql", "psycopg"):
        for threads in (True, False):
            table = read_arrow(engine, query, via=via, threads=threads)
            assert table["id"].to_pylist() == list(range(1, 30001)), (via, threads)
            assert table["note"].to_pylist() == expected, (via, threads)


@pytest.mark.postgres
def test_text_that_spells_null_is_kept_and_nan_stays_a_number(engine: sa.Engine) -> None:
    """Only PostgreSQL's NULL is missing: "n/a", "NULL", "NA" are text, NaN is a float."""
    import math

    import pyarrow as pa

    from itagger_lib.db.arrow import read_arrow

    query = (
        "SELECT 'n/a'::text AS a, 'NULL'::text AS b, 'NA'::text AS c, '#N/A'::text AS d, "
        "''::text AS empty, NULL::text AS missing, 'NaN'::float8 AS f, NULL::float8 AS g"
    )
    for via in ("psql", "psycopg"):
        row = read_arrow(engine, query, via=via, column_types={"f": pa.float64(), "g": pa.float64()})
        values = row.to_pylist()[0]
        assert [values[k] for k in "abcd"] == ["n/a", "NULL", "NA", "#N/A"], via
        assert values["empty"] == "" and values["missing"] is None, via
        assert math.isnan(values["f"]) and values["g"] is None, via
        # one column: a NULL row is an empty CSV line, which must not be skipped
        column = read_arrow(engine, "SELECT x FROM (VALUES (1), (NULL), (3)) AS v(x)", via=via)
        assert column["x"].to_pylist() == [1, None, 3], via


def test_dictionary_lookup_holds_only_the_rows_a_batch_reaches() -> None:
    """The Parquet path's dictionaries carry a batch's images, not the whole table, in any
    stored order, and read as the plain lookup (missing keys and NULL values as nulls)."""
    import pyarrow as pa

    from itagger_lib.ratings.arrow import lookup as _lookup

    table = pa.table(
        {
            "id": pa.array([50, 10, 40, 20, 30], pa.int64()),  # stored out of id order
            "sha256": pa.array(["e", "a", "d", "b", None], pa.string()),
        }
    )
    keys = pa.chunked_array([pa.array([40, 10, 40, None, 99, 30], pa.int64())])
    (plain,) = _lookup(keys, table, "id", ["sha256"])
    (encoded,) = _lookup(keys, table, "id", ["sha256"], dictionary=True)
    assert plain.to_pylist() == ["d", "a", "d", None, None, None]
    assert encoded.to_pylist() == plain.to_pylist()
    assert len(encoded.dictionary) == 3 and encoded.dictionary.null_count == 0  # 40, 10, 30


@pytest.mark.postgres
def test_times_travel_as_binary_hex_and_decode_exactly(engine: sa.Engine) -> None:
    """timestamptz_hex/timestamps_from_hex equal psycopg's datetimes to the microsecond, before
    and after 2000 and 1970 (negative offsets), with NULLs; infinity is a clear error."""
    import pyarrow as pa

    from itagger_lib.db.arrow import read_arrow, timestamps_from_hex, timestamptz_hex

    times = (
        "('1999-12-31 23:59:59.999999+00'), ('2000-01-01 00:00:00+00'), ('1969-07-20 20:17:40.5+00'), "
        "('2026-12-02 04:55:01.123456+01'), (NULL), ('2200-02-28 12:00:00.000001+00'), "
        "('1900-01-01 00:00+00')"
    )
    values = f"(VALUES {times}) AS v(t)"
    with engine.connect() as connection:
        expected = [row[0] for row in connection.execute(sa.text(f"SELECT t::timestamptz FROM {values}"))]
    query = f"SELECT {timestamptz_hex('t::timestamptz')} AS t FROM {values}"
    for via in ("psql", "psycopg"):
        table = read_arrow(engine, query, via=via, column_types={"t": pa.string()})
        decoded = timestamps_from_hex(table["t"], name="v.t")
        assert decoded.type == pa.timestamp("us", tz="UTC")
        assert decoded.to_pylist() == expected, via
        assert timestamps_from_hex(table["t"].slice(2, 3)).to_pylist() == expected[2:5]  # offsets kept
    infinity = timestamptz_hex("'infinity'::timestamptz")
    infinite = read_arrow(engine, f"SELECT {infinity} AS t", column_types={"t": pa.string()})
    with pytest.raises(ConfigError, match=r"ratings\.rated_at: 1 value.*'infinity'"):
        timestamps_from_hex(infinite["t"], name="ratings.rated_at")
    with pytest.raises(ConfigError, match=r"v\.t: expected 16 hex digits"):
        timestamps_from_hex(pa.array(["2026-12-02 04:55:01+00"]), name="v.t")
