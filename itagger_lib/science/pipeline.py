"""Science runs: compute what is missing, stream results into the database, record provenance.

The pure metrics live in the family modules; decoding and mapping over an executor live in
:mod:`~itagger_lib.science.parallel`. This module is the database edge that writes: it
picks the images that lack values for a parameter set, writes each value with its run,
parameters hash, metric version and package version, records failures, and stores the
composites' standardisation and the bins' cut points with the run so an export can be
reproduced. Reading results back is :mod:`~itagger_lib.science.results`.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib._version import __version__
from itagger_lib.config import cluster_timeout as default_cluster_timeout
from itagger_lib.db.dml import insert_ignore
from itagger_lib.db.models import Image, Metric
from itagger_lib.errors import ArgumentError, ClusterError, ClusterLostError, ImageNotFoundError, remedy
from itagger_lib.images import select as select_images
from itagger_lib.runs import close_stale_runs, finish_run, note_run, record_failures, start_run, update_run
from itagger_lib.science.composites import (
    COMPOSITES,
    compute_composites,
    compute_cut_points,
    standardisation_stats,
)
from itagger_lib.science.metrics import METRIC_VERSIONS, metric_keys, params_hash, resolve_params
from itagger_lib.science.parallel import ExecutorLike, map_images
from itagger_lib.science.results import wide_metrics
from itagger_lib.store import ImageStore

if TYPE_CHECKING:
    from distributed import Client

    from itagger_lib._types import ImageSelection
    from itagger_lib.context import Context

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
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"science run {self.run_id} (parameters {self.params_hash[:12]}): {self.computed} "
            f"computed, {self.skipped} already up to date, {len(self.failed)} failed "
            f"in {self.seconds:.1f} s"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        lines += [f"  FAILED {item}: {reason}" for item, reason in self.failed[:50]]
        lines += [f"  NOTE {text}" for text in self.notes]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(i)}</code></td><td>{html.escape(r)}</td></tr>"
            for i, r in self.failed[:200]
        )
        table = f"<table><tr><th>image</th><th>reason</th></tr>{rows}</table>" if rows else ""
        notes = "".join(f"<li>{html.escape(text)}</li>" for text in self.notes)
        notes = f"<p>Notes:</p><ul>{notes}</ul>" if notes else ""
        return f"<p><b>{html.escape(self.summary())}</b></p>{table}{notes}"


def _family_of(key: str) -> str:
    return key.split(".", 1)[0]


def _pending(
    ctx: Context, ids: list[int] | None, phash: str, keys: list[str]
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
    with ctx.engine.connect() as connection:
        rows = connection.execute(query).all()
    if ids is not None and len(rows) < len(set(ids)):
        raise ImageNotFoundError(f"some of the images {sorted(set(ids))[:10]} are not in this workspace")
    pending = [(r.id, r.sha256, r.ext, r.width, r.height) for r in rows if (r.n or 0) < len(keys)]
    return pending, len(rows) - len(pending)


def _make_executor(
    executor: ExecutorLike | None, scheduler: str | None, timeout: float
) -> tuple[ExecutorLike | None, Client | None]:
    """The executor to use (``None``: :func:`map_images` makes a pool), and what to close afterwards.

    A scheduler is reached here, before the run is recorded: one that cannot be reached
    raises one :class:`~itagger_lib.errors.ClusterError` and leaves no ``running`` row.
    """
    if executor is not None:
        return executor, None
    if scheduler:
        from itagger_lib.science.cluster import connect

        client = connect(scheduler, timeout)
        return client, client
    return None, None


def _is_dask(executor: ExecutorLike | None) -> bool:
    return executor is not None and callable(getattr(executor, "scheduler_info", None))


def _stopped(exc: BaseException) -> tuple[str, str]:
    """The status and error recorded for a run that ``exc`` ended."""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "interrupted (Ctrl-C, SIGINT or a notebook's stop); rerun to resume"
    if isinstance(exc, ClusterError):  # its message says what happened and what to do
        return "interrupted" if isinstance(exc, ClusterLostError) else "failed", str(exc)
    return "interrupted", f"{type(exc).__name__}: {exc}"


def run_science(
    ctx: Context,
    images: ImageSelection = None,
    params: Mapping[str, Any] | None = None,
    executor: ExecutorLike | None = None,
    *,
    scheduler: str | None = None,
    progress: bool = True,
    max_in_flight: int | None = None,
    cluster_timeout: float | None = None,
) -> ScienceReport:
    """Compute the science metrics that are missing for ``params``.

    Parameters
    ----------
    images
        Image ids or SHA-256 prefixes, or a DataFrame indexed by image id; default every
        image in the workspace.
    params
        Overrides of :data:`~itagger_lib.science.DEFAULT_PARAMS`. Unchanged images with
        unchanged parameters compute nothing; changed parameters give a new result set
        (a new parameters hash) beside the old one.
    executor
        Any :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``;
        default a process pool with one worker per core.
    scheduler
        Address of a Dask scheduler (``tcp://host:8786``) to run on instead.
    cluster_timeout
        On Dask: seconds to wait for a scheduler that does not answer (at most 30) and
        for a worker when none is connected, after which the run stops as
        ``interrupted`` (default the ``ITAGGER_CLUSTER_TIMEOUT`` setting, 60 s).
    """
    started = time.perf_counter()
    resolved = resolve_params(params)
    ids = select_images(ctx.engine, images)
    timeout = default_cluster_timeout() if cluster_timeout is None else float(cluster_timeout)
    if not timeout > 0:
        option = remedy("cluster_timeout", "--cluster-timeout")
        raise ArgumentError(f"{option} must be a positive number of seconds, got {cluster_timeout}")
    pool, owned = _make_executor(executor, scheduler, timeout)
    try:
        return _compute(ctx, ids, resolved, pool, max_in_flight, timeout, progress, started)
    finally:
        if owned is not None:
            owned.close()


def _compute(
    ctx: Context,
    ids: list[int] | None,
    resolved: dict[str, Any],
    pool: ExecutorLike | None,
    max_in_flight: int | None,
    timeout: float,
    progress: bool,
    started: float,
) -> ScienceReport:
    """The run itself, on an executor made or reached already: what :func:`run_science` records."""
    from tqdm.auto import tqdm

    phash = params_hash(resolved)
    keys = metric_keys(resolved)
    # every value carries its family's version: a built-in family's, or a lab metric's own
    versions = {**METRIC_VERSIONS, **{name: spec["version"] for name, spec in resolved["plugins"].items()}}
    close_stale_runs(ctx.engine, kind="science", params_hash=phash)  # left running by a killed process
    pending, complete = _pending(ctx, ids, phash, keys)
    run_id = start_run(ctx.engine, "science", resolved, ctx.user, params_hash=phash, n_total=len(pending))
    report = ScienceReport(run_id=run_id, params_hash=phash, skipped=complete)
    by_id = {row[0]: row for row in pending}
    # Dask workers read the store where their ITAGGER_STORE says: tasks carry the store's
    # relative names (the content hash), never this process's paths
    relative = _is_dask(pool)

    def items() -> Iterator[tuple[int, str, int, int]]:
        for image_id, sha, ext, width, height in pending:
            name = ImageStore.relpath(sha, ext) if relative else str(ctx.store.path_for(sha, ext))
            yield image_id, name, width, height

    rows: list[dict[str, Any]] = []
    failures: list[tuple[str, int | None, str]] = []
    notes: list[str] = []
    written = [time.monotonic(), 0]  # when, and how many results were last written

    def flush() -> None:
        written[0], written[1] = time.monotonic(), report.computed + len(report.failed)
        with ctx.engine.begin() as connection:
            insert_ignore(connection, Metric, rows)
            record_failures(connection, run_id, failures)
            note_run(connection, run_id, notes)
            update_run(
                connection,
                run_id,
                n_done=report.computed,
                n_failed=len(report.failed),
                n_skipped=report.skipped,
            )
        rows.clear()
        failures.clear()
        notes.clear()

    def tick() -> None:
        """Write what arrived since the last write once it is FLUSH_SECONDS old."""
        unwritten = report.computed + len(report.failed) > written[1] or notes
        if unwritten and time.monotonic() - written[0] >= FLUSH_SECONDS:
            flush()

    def note(text: str) -> None:
        report.notes.append(text)
        notes.append(text)

    bar = tqdm(total=len(pending), desc="science", unit="img", disable=not progress)
    try:
        if pending:
            outcomes = map_images(
                items(),
                resolved,
                executor=pool,
                max_in_flight=max_in_flight,
                tick=tick,
                note=note,
                cluster_timeout=timeout,
            )
            for image_id, values, error in outcomes:
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
                            "metric_version": versions[_family_of(key)],
                            "package_version": __version__,
                        }
                        for key, value in values.items()
                    )
                if len(rows) >= BATCH_IMAGES * len(keys):
                    flush()
                else:
                    tick()
                bar.update(1)
        flush()
    except BaseException as exc:
        bar.close()
        status, error = _stopped(exc)
        report.status = status
        flush()
        finish_run(
            ctx.engine,
            run_id,
            status=status,
            error=error,
            n_done=report.computed,
            n_failed=len(report.failed),
        )
        raise
    bar.close()
    details = _summaries(ctx, phash, keys)
    report.seconds = time.perf_counter() - started
    report.status = finish_run(
        ctx.engine,
        run_id,
        status=("failed" if not report.computed else "partial") if report.failed else "succeeded",
        n_done=report.computed,
        n_failed=len(report.failed),
        n_skipped=report.skipped,
        details={**details, "seconds": round(report.seconds, 3)},
    )
    return report


def _summaries(ctx: Context, phash: str, keys: list[str]) -> dict[str, Any]:
    """Standardisation of the composites and tertile cut points over the workspace."""
    wide = wide_metrics(ctx, phash)
    if wide.empty:
        return {"standardisation": {}, "cut_points": {}}
    needed = sorted({metric for parts in COMPOSITES.values() for metric, _ in parts})
    stats: dict[str, list[float]] = {}
    if all(column in wide.columns for column in needed):
        stats = standardisation_stats(wide, needed)
        wide = wide.join(compute_composites(wide, stats=stats))
    columns = [c for c in wide.columns if not c.startswith("meta.") and wide[c].notna().any()]
    return {"standardisation": stats, "cut_points": compute_cut_points(wide, columns)}
