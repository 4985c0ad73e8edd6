"""Science runs: compute what is missing, stream results into the database, record provenance.

The pure metrics live in the family modules; decoding and mapping over an executor live in
:mod:`~itagger_lib.science.worker`. This module is the database edge: it picks the images
that lack values for a parameter set, writes each value with its run, parameters hash,
metric version and package version, records failures, and stores the composites'
standardisation and the bins' cut points with the run so an export can be reproduced.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib._version import __version__
from itagger_lib.db.dml import insert_ignore
from itagger_lib.db.models import Image, Metric, Run
from itagger_lib.errors import ImageNotFoundError, ScienceError
from itagger_lib.runs import finish_run, record_failures, start_run, update_run
from itagger_lib.science.metrics import METRIC_VERSIONS, metric_keys, params_hash, resolve_params

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib.workspace import Workspace

BATCH_IMAGES = 64
FLUSH_SECONDS = 2.0  # write at least this often, so a killed run loses little


@dataclass
class ScienceReport:
    """What a science run did."""

    run_id: int | None
    params_hash: str
    computed: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"

    def summary(self) -> str:
        return (
            f"science run {self.run_id} (parameters {self.params_hash[:12]}): {self.computed} "
            f"computed, {self.skipped} already up to date, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  FAILED {item}: {reason}" for item, reason in self.failed[:50]]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(i)}</code></td><td>{html.escape(r)}</td></tr>"
            for i, r in self.failed[:200]
        )
        table = f"<table><tr><th>image</th><th>reason</th></tr>{rows}</table>" if rows else ""
        return f"<p><b>{html.escape(self.summary())}</b></p>{table}"


def _family_of(key: str) -> str:
    return key.split(".", 1)[0]


def _select_images(ws: Workspace, images: Any) -> list[int] | None:
    if images is None:
        return None
    if isinstance(images, (int, str)):
        images = [images]
    ids: list[int] = []
    for ref in images:
        ids.append(int(ws.image(ref)["id"]))
    return ids


def _pending(
    ws: Workspace, ids: list[int] | None, phash: str, keys: list[str]
) -> tuple[list[tuple[int, str, str, int, int]], int]:
    """Images lacking any of ``keys`` for ``phash``, and how many are already complete."""
    have = (
        sa.select(Metric.image_id, sa.func.count().label("n"))
        .where(Metric.params_hash == phash, Metric.key.in_(keys))
        .group_by(Metric.image_id)
        .subquery()
    )
    query = (
        sa.select(Image.id, Image.sha256, Image.ext, Image.width, Image.height, have.c.n)
        .outerjoin(have, have.c.image_id == Image.id)
        .order_by(Image.id)
    )
    if ids is not None:
        query = query.where(Image.id.in_(ids))
    with ws.engine.connect() as connection:
        rows = connection.execute(query).all()
    if ids is not None and len(rows) < len(set(ids)):
        raise ImageNotFoundError(f"some of the images {sorted(set(ids))[:10]} are not in this workspace")
    pending = [(r.id, r.sha256, r.ext, r.width, r.height) for r in rows if (r.n or 0) < len(keys)]
    return pending, len(rows) - len(pending)


def _mark_stale_runs(ws: Workspace, phash: str) -> None:
    """Science runs with these parameters left ``running`` by a killed process."""
    from itagger_lib.runs import close_stale_runs

    close_stale_runs(ws.engine, kind="science", params_hash=phash)


def _make_executor(executor: Any, scheduler: str | None) -> tuple[Any, Any]:
    """The executor to use, and what to close afterwards."""
    if executor is not None:
        return executor, None
    if scheduler:
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ScienceError(
                "a Dask scheduler was given but dask.distributed is not installed; "
                "pip install 'image-tagger[dask]'"
            ) from exc
        client = Client(scheduler)
        return client, client
    return None, None


def run_science(
    ws: Workspace,
    images: Iterable[int | str] | int | str | None = None,
    params: Mapping[str, Any] | None = None,
    executor: Any = None,
    *,
    scheduler: str | None = None,
    progress: bool = True,
    max_in_flight: int | None = None,
) -> ScienceReport:
    """Compute the science metrics that are missing for ``params``.

    Parameters
    ----------
    images
        Ids or SHA-256 prefixes; default every image in the workspace.
    params
        Overrides of :data:`~itagger_lib.science.DEFAULT_PARAMS`. Unchanged images with
        unchanged parameters compute nothing; changed parameters give a new result set
        (a new parameters hash) beside the old one.
    executor
        Any :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``;
        default a process pool with one worker per core.
    scheduler
        Address of a Dask scheduler (``tcp://host:8786``) to run on instead.
    """
    from tqdm.auto import tqdm

    from itagger_lib.science.worker import map_images

    started = time.perf_counter()
    resolved = resolve_params(params)
    phash = params_hash(resolved)
    keys = metric_keys(resolved)
    ids = _select_images(ws, images)
    _mark_stale_runs(ws, phash)
    pending, complete = _pending(ws, ids, phash, keys)
    run_id = start_run(ws.engine, "science", resolved, ws.user, params_hash=phash, n_total=len(pending))
    report = ScienceReport(run_id=run_id, params_hash=phash, skipped=complete)
    by_id = {row[0]: row for row in pending}

    def items() -> Iterator[tuple[int, str, int, int]]:
        for image_id, sha, ext, width, height in pending:
            yield image_id, str(ws.store.path_for(sha, ext)), width, height

    rows: list[dict[str, Any]] = []
    failures: list[tuple[str, int | None, str]] = []

    last_flush = [time.monotonic()]

    def flush() -> None:
        last_flush[0] = time.monotonic()
        with ws.engine.begin() as connection:
            insert_ignore(connection, Metric, rows)
            record_failures(connection, run_id, failures)
            update_run(
                connection,
                run_id,
                n_done=report.computed,
                n_failed=len(report.failed),
                n_skipped=report.skipped,
            )
        rows.clear()
        failures.clear()

    bar = tqdm(total=len(pending), desc="science", unit="img", disable=not progress)
    pool, owned = _make_executor(executor, scheduler)
    try:
        if pending:
            for image_id, values, error in map_images(
                items(), resolved, executor=pool, max_in_flight=max_in_flight
            ):
                sha = by_id[image_id][1]
                if error is not None or values is None:
                    reason = error or "no values returned"
                    report.failed.append((sha, reason))
                    failures.append((sha, image_id, reason))
                else:
                    report.computed += 1
                    rows.extend(
                        {
                            "image_id": image_id,
                            "run_id": run_id,
                            "params_hash": phash,
                            "key": key,
                            "value": None if value != value else float(value),
                            "metric_version": METRIC_VERSIONS.get(_family_of(key), "1"),
                            "package_version": __version__,
                        }
                        for key, value in values.items()
                    )
                if len(rows) >= BATCH_IMAGES * len(keys) or time.monotonic() - last_flush[0] > FLUSH_SECONDS:
                    flush()
                bar.update(1)
        flush()
    except BaseException as exc:
        bar.close()
        flush()
        finish_run(
            ws.engine,
            run_id,
            status="interrupted",
            error=f"{type(exc).__name__}: {exc}",
            n_done=report.computed,
            n_failed=len(report.failed),
        )
        raise
    finally:
        if owned is not None:
            owned.close()
    bar.close()
    details = _summaries(ws, phash, keys)
    report.seconds = time.perf_counter() - started
    report.status = finish_run(
        ws.engine,
        run_id,
        status=("failed" if not report.computed else "partial") if report.failed else "succeeded",
        n_done=report.computed,
        n_failed=len(report.failed),
        n_skipped=report.skipped,
        details={**details, "seconds": round(report.seconds, 3)},
    )
    return report


def _summaries(ws: Workspace, phash: str, keys: list[str]) -> dict[str, Any]:
    """Standardisation of the composites and tertile cut points over the workspace."""
    from itagger_lib.science.composites import (
        COMPOSITES,
        compute_composites,
        compute_cut_points,
        standardisation_stats,
    )

    wide = wide_metrics(ws, phash)
    if wide.empty:
        return {"standardisation": {}, "cut_points": {}}
    needed = sorted({metric for parts in COMPOSITES.values() for metric, _ in parts})
    stats: dict[str, list[float]] = {}
    if all(column in wide.columns for column in needed):
        stats = standardisation_stats(wide, needed)
        wide = wide.join(compute_composites(wide, stats=stats))
    columns = [c for c in wide.columns if not c.startswith("meta.") and wide[c].notna().any()]
    return {"standardisation": stats, "cut_points": compute_cut_points(wide, columns)}


def wide_metrics(
    ws: Workspace, phash: str, keys: Iterable[str] | None = None, image_ids: Iterable[int] | None = None
) -> pd.DataFrame:
    """Stored values of one parameter set as image × metric (optionally some keys / images)."""
    import pandas as pd

    query = sa.select(Metric.image_id, Metric.key, Metric.value).where(Metric.params_hash == phash)
    if keys is not None:
        query = query.where(Metric.key.in_(list(keys)))
    if image_ids is not None:
        query = query.where(Metric.image_id.in_(list(image_ids)))
    if ws.engine.dialect.name == "postgresql":
        long = _copy_long(ws, query)
    else:
        with ws.engine.connect() as connection:
            long = pd.read_sql(query, connection)
    if long.empty:
        return pd.DataFrame()
    return _pivot(long)


def _pivot(long: pd.DataFrame) -> pd.DataFrame:
    """(image_id, key, value) rows as image × key, images and keys sorted.

    ``DataFrame.pivot`` by array indexing: (image, parameters, key) is unique in the table,
    so each cell is written once; 8x faster than pandas' sort-based reshape at 2.8 M rows.
    """
    import numpy as np
    import pandas as pd

    image_codes, images = pd.factorize(long["image_id"], sort=True)
    key_codes, keys = pd.factorize(long["key"], sort=True)  # hashing: a few dozen distinct keys
    cells = np.full((len(images), len(keys)), np.nan)
    cells[image_codes, key_codes] = long["value"].to_numpy(dtype=float, na_value=np.nan)
    index = pd.Index(np.asarray(images, dtype=np.int64), name="image_id")
    return pd.DataFrame(cells, index=index, columns=pd.Index([str(k) for k in keys]))


def _copy_long(ws: Workspace, query: Any, streams: int = 2) -> pd.DataFrame:
    """``query``'s (image_id, key, value) rows through COPY into Arrow (4x ``read_sql`` at 100k images).

    Read as ``streams`` image-id ranges at once (one server process and parser each).
    """
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow as pa

    from itagger_lib.db.arrow import read_arrow

    with ws.engine.connect() as connection:
        low, high = connection.execute(sa.select(sa.func.min(Image.id), sa.func.max(Image.id))).one()
    low, high = (low or 0), (high or 0) + 1
    edges = [low + (high - low) * k // streams for k in range(streams + 1)]
    types = {"image_id": pa.int64(), "key": pa.string(), "value": pa.float64()}

    def part(a: int, b: int) -> pa.Table:
        ranged = query.where(Metric.image_id >= a, Metric.image_id < b)
        return read_arrow(ws.engine, ranged, column_types=types, threads=False)

    with ThreadPoolExecutor(streams) as pool:
        parts = list(pool.map(part, edges[:-1], edges[1:]))
    return pa.concat_tables(parts).to_pandas()


def metrics_frame(
    ws: Workspace,
    run: int | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    composites: bool = True,
    bins: bool = False,
) -> pd.DataFrame:
    """Science values as a DataFrame, one row per image, one column per metric.

    By default the newest science run's parameter set; ``run=`` picks a run's set, and
    ``params=`` a parameter set. With ``composites`` the composite indices are added with
    the standardisation stored on that run; with ``bins`` a ``bin.<metric>`` column
    (low/mid/high) per metric, with the run's stored cut points.
    """
    import pandas as pd

    query = sa.select(Run).where(Run.kind == "science", Run.status.in_(("succeeded", "partial")))
    if run is not None:
        query = sa.select(Run).where(Run.id == run, Run.kind == "science")
    elif params is not None:
        query = query.where(Run.params_hash == params_hash(params))
    with ws.session() as session:
        record = session.execute(query.order_by(Run.id.desc()).limit(1)).scalars().first()
        if record is not None:
            session.expunge(record)
    if record is None:
        if run is not None:
            raise ScienceError(f"run {run} is not a science run of this workspace; see ws.runs('science')")
        return pd.DataFrame()
    wide = wide_metrics(ws, record.params_hash or "")
    if wide.empty:
        return wide
    details = record.details or {}
    if composites and details.get("standardisation"):
        from itagger_lib.science.composites import compute_composites

        wide = wide.join(compute_composites(wide, stats=details["standardisation"]))
    if bins and details.get("cut_points"):
        from itagger_lib.science.composites import assign_bins

        binned = assign_bins(wide, {k: v for k, v in details["cut_points"].items() if k in wide.columns})
        wide = wide.join(binned.add_prefix("bin."))
    wide.attrs.update(
        {"run_id": record.id, "params_hash": record.params_hash, "package_version": record.version}
    )
    return wide
