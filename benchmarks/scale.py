"""Explorer queries and exports at scale, on PostgreSQL.

    python benchmarks/scale.py [--images 100000] [--postgres URL] [--repeats 20] [--keep] [--export-runs 3]
    python benchmarks/scale.py --database NAME      # rerun on a database kept by --keep

Fills a fresh Postgres database with N synthetic images × 30 metrics and 3 raters × 10
attributes through the library's own write path (``insert_ignore``, as ingest, the science
runner and ``ws.add_ratings`` use it; the schema's triggers keep ``rating_means`` during the
load, and the kept table is then checked against a recount), runs ``VACUUM ANALYZE`` as
autovacuum would, then times explorer page queries (p50/p95 over repeats) and the Parquet
exports. "rows/s" counts rating rows written to the long ratings file; the default path is
run ``--export-runs`` times (3) and its median compared with the bound.

Targets: p95 ≤ 100 ms per page query; export ≥ 1 M rows/s.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHUNK = 10_000


def _insert(connection: sa.Connection, model: Any, frame: pd.DataFrame) -> None:
    """``frame``'s rows through ``insert_ignore``, the write path of ingest, science and ratings."""
    from itagger_lib.db.dml import insert_ignore

    for start in range(0, len(frame), 50_000):
        insert_ignore(connection, model, frame.iloc[start : start + 50_000].to_dict("records"))


def fill(ws, n: int, seed: int = 0) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """N images, 30 metrics each (one science run with cut points), 3 raters × 10 attributes.

    Rows go in through ``insert_ignore`` (the product's write path); the database's own
    triggers keep ``rating_means`` while the ratings go in, and
    :func:`check_rating_means` compares the kept table with a recount afterwards.
    """
    from itagger_lib.db.models import Codebook, Image, Metric, Rating, utcnow
    from itagger_lib.runs import finish_run, start_run
    from itagger_lib.science.metrics import METRIC_VERSIONS, metric_keys, params_hash

    rng = np.random.default_rng(seed)
    timings = {}
    now = utcnow()
    start = time.perf_counter()
    index = np.arange(n)
    images = pd.DataFrame(
        {
            "sha256": [hashlib.sha256(f"synthetic-{i}".encode()).hexdigest() for i in index],
            "ext": "jpg",
            "format": "JPEG",
            "width": 1600,
            "height": 1200,
            "bytes": 300_000,
            "source_name": [f"img_{i}.jpg" for i in index],
            "source_path": [f"/synthetic/img_{i}.jpg" for i in index],
            "collection": np.array(["facades", "interiors", "streets"])[index % 3],
            "ingested_at": now,
            "ingested_by": "benchmark",
        }
    )
    with ws.engine.begin() as connection:
        _insert(connection, Image, images)
        ids = np.array(list(connection.execute(sa.select(Image.id).order_by(Image.id)).scalars()))
    timings["images"] = time.perf_counter() - start

    keys = [
        *[k for k in metric_keys() if not k.startswith("meta.")][:28],
        "meta.working_width",
        "meta.working_height",
    ]
    phash = params_hash()
    run_id = start_run(ws.engine, "science", {"synthetic": True}, "benchmark", params_hash=phash)
    start = time.perf_counter()
    values = rng.normal(size=(len(ids), len(keys)))
    metrics = pd.DataFrame(
        {
            "image_id": np.repeat(ids, len(keys)),
            "run_id": run_id,
            "params_hash": phash,
            "key": np.tile(np.array(keys), len(ids)),
            "value": values.ravel(),
            "metric_version": np.tile(
                np.array([METRIC_VERSIONS.get(k.split(".")[0], "1") for k in keys]), len(ids)
            ),
            "package_version": "bench",
        }
    )
    with ws.engine.begin() as connection:
        _insert(connection, Metric, metrics)
    cut_points = {
        k: [float(np.quantile(values[:, i], 1 / 3)), float(np.quantile(values[:, i], 2 / 3))]
        for i, k in enumerate(keys)
        if not k.startswith("meta.")
    }
    finish_run(
        ws.engine,
        run_id,
        status="succeeded",
        n_done=len(ids),
        details={"cut_points": cut_points, "standardisation": {}},
    )
    timings["metrics"] = time.perf_counter() - start

    start = time.perf_counter()
    attributes = [f"attribute_{i}" for i in range(10)]
    with ws.engine.begin() as connection:
        codebook_id = connection.execute(
            sa.insert(Codebook).values(
                name="benchmark",
                version="1",
                content_hash="bench",
                source_text="",
                definition={},
                created_at=utcnow(),
                created_by="benchmark",
            )
        ).inserted_primary_key[0]
        scores = rng.integers(1, 8, size=(len(ids), 3, len(attributes)))
        per_image = 3 * len(attributes)
        ratings = pd.DataFrame(
            {
                "image_id": np.repeat(ids, per_image),
                "attribute": np.tile(np.array(attributes), 3 * len(ids)),
                "codebook_id": codebook_id,
                "rater": np.tile(
                    np.repeat(np.array(["rater0", "rater1", "rater2"]), len(attributes)), len(ids)
                ),
                "source": "human",
                "value": scores.ravel().astype(float),
                "mode": "blind",
                "is_repeat": False,
                "is_gold": False,
                "repeat_index": 0,
                "rated_at": now,
            }
        )
        _insert(connection, Rating, ratings)
    timings["ratings"] = time.perf_counter() - start
    start = time.perf_counter()
    # What autovacuum does soon after a bulk load: statistics and the visibility map, so
    # index-only scans need not visit the heap.
    with ws.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql("VACUUM ANALYZE")
    timings["vacuum"] = time.perf_counter() - start
    return timings


def check_rating_means(ws) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """Rows of ``rating_means`` and the largest difference from a recount of ``ratings``.

    Raises if an (image, attribute) is missing on either side or a count differs.
    """
    statement = """
        SELECT count(*) AS rows,
               count(*) FILTER (WHERE k.n IS NULL OR r.n IS NULL OR k.n <> r.n) AS wrong,
               coalesce(max(abs(k.mean - r.mean)), 0) AS worst
        FROM rating_means k
        FULL JOIN (SELECT image_id, attribute, count(value) AS n, avg(value) AS mean FROM ratings
                   WHERE source IN ('human', 'import') AND value IS NOT NULL AND NOT is_repeat
                         AND repeat_index = 0
                   GROUP BY image_id, attribute) r USING (image_id, attribute)
    """
    with ws.engine.connect() as connection:
        rows, wrong, worst = connection.execute(sa.text(statement)).one()
    if wrong:
        raise AssertionError(f"rating_means differs from a recount of ratings in {wrong} of {rows} rows")
    return int(rows), float(worst)


def time_queries(ws, repeats: int) -> list[tuple[str, float, float]]:  # type: ignore[no-untyped-def]
    from itagger_lib import browse

    cases = {
        "page 0, sort by id": browse.Query(),
        "sort by a metric, page 50": browse.Query(sort="complexity.edge_density", descending=True, page=50),
        "metric range + sort by another metric": browse.Query(
            metric_ranges={"colour.colourfulness": (0.5, None)}, sort="fractal.dimension"
        ),
        "two ranges + a bin + collection": browse.Query(
            metric_ranges={"colour.colourfulness": (0.0, None), "complexity.edge_density": (None, 1.0)},
            bins={"colour_areas.green_share": "high"},
            collection="streets",
        ),
        "mean-rating range + sort by rating": browse.Query(
            rating_ranges={"attribute_3": (5.0, None)}, sort="rating:attribute_3", descending=True
        ),
        "sort by mean rating, unrated last": browse.Query(sort="rating:attribute_5", page=10),
        "metric range + mean-rating range": browse.Query(
            metric_ranges={"colour.colourfulness": (0.5, None)}, rating_ranges={"attribute_1": (None, 3.0)}
        ),
    }
    results = []
    for name, query in cases.items():
        for label, count in (("page", False), ("page + count", True)):
            samples = []
            for _ in range(repeats):
                start = time.perf_counter()
                browse.page(ws, query, count=count)
                samples.append((time.perf_counter() - start) * 1000)
            samples.sort()
            p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
            results.append((f"{name} ({label})", statistics.median(samples), p95))
    return results


def server_copy_seconds(ws, format: str = "csv") -> float | None:  # type: ignore[no-untyped-def]
    """Seconds for one server process to run the export's SELECT as ``format`` into ``/dev/null``.

    No client, pipe or parsing: the floor the server sets for one COPY stream. Needs a
    superuser (``COPY … TO`` a server file); ``None`` otherwise.
    """
    from itagger_lib.ratings.arrow import COPY_COLUMNS

    select = f"SELECT {', '.join(COPY_COLUMNS)} FROM ratings"
    with ws.engine.connect() as connection:
        if not connection.exec_driver_sql(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
        ).scalar():
            return None
        start = time.perf_counter()
        connection.exec_driver_sql(f"COPY ({select}) TO '/dev/null' WITH (FORMAT {format})")
        return time.perf_counter() - start


def parquet_write_seconds(path: Path, out: Path) -> float:
    """Seconds to write the ratings file's table again from memory (the writer's share)."""
    import pyarrow.parquet as pq

    from itagger_lib.export.files import RATING_WRITE

    table = pq.read_table(path)
    start = time.perf_counter()
    pq.write_table(table, out, **RATING_WRITE)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--postgres", default=os.environ.get("ITAGGER_TEST_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--database", help="reuse this database, filled by an earlier --keep run (no fill)")
    parser.add_argument("--keep", action="store_true", help="keep the filled database and print its name")
    parser.add_argument(
        "--export-runs", type=int, default=3, help="runs of the default export; the median is compared"
    )
    args = parser.parse_args()

    from itagger_lib import Workspace
    from itagger_lib.export import export, export_ratings

    name = args.database or f"itagger_scale_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(args.postgres, isolation_level="AUTOCOMMIT")
    if not args.database:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(args.postgres).set(database=name).render_as_string(hide_password=False)
    ok = True
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            ws = Workspace(database_url=url, store=Path(tmp) / "store", home=tmp)
            fill_times = fill(ws, args.images) if not args.database else {}
            means_rows, means_error = check_rating_means(ws)
            with ws.engine.connect() as connection:
                n_images, n_metrics, n_ratings = connection.execute(
                    sa.text(
                        "SELECT (SELECT count(*) FROM images), (SELECT count(*) FROM metrics), "
                        "(SELECT count(*) FROM ratings)"
                    )
                ).one()
            queries = time_queries(ws, args.repeats)
            import pyarrow.parquet as pq

            server = server_copy_seconds(ws)
            server_binary = server_copy_seconds(ws, "binary")
            timings = {}
            default = "psql"
            vias = ["psycopg"]
            runs: list[float] = []
            for via in [*vias, *[default] * args.export_runs]:  # the default last, its file kept
                start = time.perf_counter()
                path = export_ratings(ws, Path(tmp) / "ratings.parquet", via=via)
                timings[via] = time.perf_counter() - start
                if via == default:
                    runs.append(timings[via])
            timings[default] = statistics.median(runs)
            rows = pq.read_metadata(path).num_rows
            writer = parquet_write_seconds(path, Path(tmp) / "again.parquet")
            start = time.perf_counter()
            files = export(ws, Path(tmp) / "export", format="parquet")
            full_seconds = time.perf_counter() - start
            table_rows = pq.read_metadata(next(f for f in files if f.name.startswith("table"))).num_rows
            ws.close()
    finally:
        if not args.keep and not args.database:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    load_after = os.getloadavg()

    print(
        f"\nScale benchmark on PostgreSQL: {n_images:,} images, {n_metrics:,} metric rows, "
        f"{n_ratings:,} rating rows; {os.cpu_count()} cores, load average (1 min) "
        f"{load_before[0]:.2f} before, {load_after[0]:.2f} after\n"
    )
    if fill_times:
        print(
            f"fill (insert_ignore): images {fill_times['images']:.1f} s, "
            f"metrics {fill_times['metrics']:.1f} s, "
            f"ratings {fill_times['ratings']:.1f} s (rating_means kept by the triggers), "
            f"VACUUM ANALYZE {fill_times['vacuum']:.1f} s"
        )
    print(
        f"rating_means: {means_rows:,} rows, equal to a recount of ratings "
        f"(largest mean difference {means_error:.1e})\n"
    )
    print(f"| {'explorer query':58} | {'p50 ms':>8} | {'p95 ms':>8} | bound  | result |")
    print(f"|{'-' * 60}|{'-' * 10}|{'-' * 10}|--------|--------|")
    for query_name, p50, p95 in queries:
        passed = p95 <= 100
        if query_name.endswith("(page)"):  # the bound is per page query; counts are shown for reference
            ok &= passed
        print(f"| {query_name:58} | {p50:8.1f} | {p95:8.1f} | ≤ 100  | {'PASS' if passed else 'FAIL':6} |")
    rate = rows / timings[default]
    passed = rate >= 1e6
    ok &= passed
    print(
        f"\n| {'export (rows/s = rating rows in the long file / s)':58} | {'rows':>9} | {'s':>6} | "
        f"{'rows/s':>10} | bound       | result |"
    )
    print(f"|{'-' * 60}|{'-' * 11}|{'-' * 8}|{'-' * 12}|-------------|--------|")
    references = [("floor: server alone, 1 process, SELECT as CSV to /dev/null", server)]
    references.append(("floor: server alone, 1 process, binary COPY to /dev/null", server_binary))
    references.append(("floor: Parquet write alone, table in memory", writer))
    for label, value in references:
        shown = f"{value:6.2f} | {rows / value:10,.0f}" if value else f"{'n/a':>6} | {'n/a':>10}"
        print(f"| {label:58} | {rows:9,} | {shown} |             | info   |")
    labels = {
        "psycopg": "export_ratings → Parquet, CSV COPY read over psycopg",
        "psql": "export_ratings → Parquet, CSV COPY through psql",
    }
    for via in vias:
        print(
            f"| {labels[via]:58} | {rows:9,} | "
            f"{timings[via]:6.2f} | {rows / timings[via]:10,.0f} |             | info   |"
        )
    spread = f"median of {len(runs)}: " + ", ".join(f"{x:.2f}" for x in sorted(runs)) + " s"
    print(
        f"| {labels[default] + ' (default)':58} | {rows:9,} | "
        f"{timings[default]:6.2f} | {rate:10,.0f} | ≥ 1,000,000 | {'PASS' if passed else 'FAIL':6} |"
    )
    both = rows + table_rows
    print(
        f"| {f'whole export: ratings + per-image table (+{table_rows:,} rows)':58} | {both:9,} | "
        f"{full_seconds:6.2f} | {both / full_seconds:10,.0f} |             | info   |"
    )
    print(f"\nthe default export's runs ({spread}); rows/s above is for the median")
    if args.keep and not args.database:
        print(f"\nkept database {name!r}: rerun with --database {name}; drop it with dropdb when done")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
