"""The I/O edge of the science pipeline: map the suite over many images in worker processes.

:func:`~itagger_lib.science.worker.analyse_file` (re-exported here) runs in a worker
process: it decodes one file and computes its metrics. :func:`map_images` streams many
images through any :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``
with a bounded number of tasks in flight, so memory stays flat with the number of images
(the Dask side is :mod:`~itagger_lib.science.dask_map`).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING, Any, TypeAlias

from itagger_lib.errors import ScienceError
from itagger_lib.science.metrics import resolve_params
from itagger_lib.science.worker import (
    Item,
    Outcome,
    _worker_init,
    analyse_file,
    decode_for_science,
    describe,
    one_opencv_thread,
)

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "ExecutorLike",
    "analyse_file",
    "decode_for_science",
    "default_executor",
    "describe",
    "map_images",
    "one_opencv_thread",
]

#: Where images are analysed: any :class:`concurrent.futures.Executor` (a process pool) or a
#: ``dask.distributed.Client``.
ExecutorLike: TypeAlias = "cf.Executor | Client"

# Images per Dask task: a Dask task costs milliseconds of scheduler and worker time, a
# sizeable share of one image's suite, so tasks of a few images amortise it.
DASK_BATCH = 4
# Longest wait for a result from a pool before the caller's tick gets a turn.
TICK_SECONDS = 0.5


def default_executor(workers: int | None = None) -> cf.ProcessPoolExecutor:
    """A process pool with one worker per core, started with ``forkserver`` (or ``spawn``).

    Forking a process whose OpenCV thread pool is already running can deadlock the child,
    so the workers never inherit the caller's threads; each runs OpenCV single-threaded.
    The fork server imports this module (numpy, OpenCV, SciPy, the metric families) once,
    before it forks anything, so each worker starts in milliseconds instead of re-importing
    for a second or more; it runs no OpenCV code, so it holds no threads to inherit.
    """
    context: multiprocessing.context.BaseContext
    if "forkserver" in multiprocessing.get_all_start_methods():
        forkserver = multiprocessing.get_context("forkserver")
        # Takes effect when the fork server starts (the first forkserver pool of the process).
        forkserver.set_forkserver_preload(["__main__", __name__])
        context = forkserver
    else:
        context = multiprocessing.get_context("spawn")
    return cf.ProcessPoolExecutor(
        workers or os.cpu_count() or 1, mp_context=context, initializer=_worker_init
    )


def _is_dask_client(executor: Any) -> bool:
    return callable(getattr(executor, "submit", None)) and callable(getattr(executor, "scheduler_info", None))


def _worker_count(executor: Any) -> int:
    if _is_dask_client(executor):
        try:
            return max(1, sum(executor.nthreads().values()))
        except Exception:
            return os.cpu_count() or 1
    return int(getattr(executor, "_max_workers", None) or os.cpu_count() or 1)


def map_images(
    items: Iterable[Item],
    params: Mapping[str, Any] | None = None,
    executor: ExecutorLike | None = None,
    max_in_flight: int | None = None,
    *,
    tick: Callable[[], None] | None = None,
    note: Callable[[str], None] | None = None,
    cluster_timeout: float | None = None,
) -> Iterator[Outcome]:
    """Compute metrics for many images in parallel, yielding results as they complete.

    Parameters
    ----------
    items : iterable of (image_id, path, width, height)
        Consumed lazily; ``width``/``height`` (the stored size, may be None) enable the
        reduced JPEG decode.
    params : mapping, optional
        Science parameters (validated here, once, before anything is submitted).
    executor : concurrent.futures.Executor or dask.distributed.Client, optional
        Default: :func:`default_executor` (one worker process per core), created and shut
        down here. A caller-made ``ProcessPoolExecutor`` should use a ``spawn`` or
        ``forkserver`` context: forked children of a process that has used OpenCV can hang.
    max_in_flight : int, optional
        Most images submitted but not yet yielded (default 4 x workers; 8 x workers on
        Dask, whose tasks carry up to :data:`DASK_BATCH` images each).
    tick : callable, optional
        Called at least every second while results are awaited (a run writes what it
        has on a timer, not only when the next result comes).
    note : callable, optional
        Given what happened to the cluster, in words (Dask: a worker lost while running
        tasks, which the scheduler retried).
    cluster_timeout : float, optional
        Dask: seconds without any worker after which
        :class:`~itagger_lib.errors.ClusterLostError` stops the mapping (default the
        ``ITAGGER_CLUSTER_TIMEOUT`` setting, 60 s). A path that is not absolute is read
        from each worker's own store (``ITAGGER_STORE``), see
        :mod:`~itagger_lib.science.cluster`.

    Yields
    ------
    (image_id, metrics, error)
        ``metrics`` is the dict of :func:`compute_metrics` and ``error`` None, or ``metrics``
        is None and ``error`` a message naming the file ("CorruptImageError: …"). One
        failing image does not stop the others. Order is completion order.
    """
    resolved = resolve_params(params)
    owned = executor is None
    pool = _Pool(default_executor if owned else None, executor)
    workers = _worker_count(pool.executor)
    dask = _is_dask_client(pool.executor)
    limit = max(1, int(max_in_flight or (2 * DASK_BATCH if dask else 4) * workers))
    try:
        if dask:
            from itagger_lib.config import cluster_timeout as default_timeout
            from itagger_lib.science.dask_map import map_dask

            batch = max(1, min(DASK_BATCH, limit // (2 * workers)))
            timeout = default_timeout() if cluster_timeout is None else cluster_timeout
            yield from map_dask(
                items, resolved, pool.executor, limit, batch, timeout=timeout, tick=tick, note=note
            )
        else:
            yield from _map_futures(items, resolved, pool, limit, tick)
    finally:
        if owned:
            pool.executor.shutdown(wait=True, cancel_futures=True)


class _Pool:
    """The executor :func:`_map_futures` submits to, and how to replace it when it breaks.

    ``make`` is set only for a pool made here (:func:`default_executor`): a pool the caller
    passed is theirs, and is never replaced.
    """

    def __init__(self, make: Any, executor: Any = None) -> None:
        self.make = make
        self.executor = executor if executor is not None else make()

    def rebuild(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = self.make()


def _died_message(path: str) -> str:
    return (
        f"WorkerDiedError: the worker process died while analysing {path} (a crash in the "
        "image decoder or a metric, or the system ended it for lack of memory); this image "
        "was left out and the run went on — check the file (itagger check) or re-ingest it"
    )


def _map_futures(
    items: Iterable[Item],
    params: dict[str, Any],
    pool: _Pool,
    limit: int,
    tick: Callable[[], None] | None = None,
) -> Iterator[Outcome]:
    """Images over a ``concurrent.futures`` executor, at most ``limit`` in flight.

    When a worker process dies (``BrokenProcessPool``), every image in flight is a suspect:
    the pool is rebuilt and the suspects are run again one at a time, so the image that
    kills a worker again is the one recorded as failed, and the others are computed. A pool
    the caller passed cannot be rebuilt here: :class:`~itagger_lib.errors.ScienceError`
    says so (a rerun resumes with what is missing).
    """
    pending: dict[cf.Future[dict[str, float]], Item] = {}
    suspects: deque[Item] = deque()
    isolating: Item | None = None  # the one suspect in flight, alone
    source = iter(items)
    exhausted = False
    try:
        while True:
            while len(pending) < (1 if suspects or isolating else limit):
                if suspects:
                    item = isolating = suspects.popleft()
                elif exhausted or isolating:
                    break
                elif (item := next(source, None)) is None:  # type: ignore[assignment]
                    exhausted = True
                    break
                _, path, width, height = item
                try:
                    future = pool.executor.submit(analyse_file, str(path), params, width, height)
                except BrokenProcessPool:  # broke since the last wait: the item never ran
                    future = cf.Future()
                    future.set_exception(BrokenProcessPool("broken before submit"))
                pending[future] = item
            if not pending:
                return
            done, _ = cf.wait(pending, timeout=TICK_SECONDS, return_when=cf.FIRST_COMPLETED)
            if tick is not None:
                tick()
            broken = False
            for future in done:
                item = pending[future]
                values: dict[str, float] | None = None
                error: str | None = None
                try:
                    values = future.result()
                except BrokenProcessPool:
                    broken = True
                    continue
                except Exception as exc:
                    error = describe(exc)
                del pending[future]
                if item is isolating:
                    isolating = None
                yield item[0], values, error
            if broken:
                if pool.make is None:
                    raise ScienceError(
                        "a worker process of the executor you passed died (a crash in the image "
                        f"decoder or a metric, or out of memory) while analysing one of "
                        f"{sorted(str(i[1]) for i in pending.values())[:4]}; the pool cannot be "
                        "used any more: pass a new executor (or none) and rerun, which resumes"
                    )
                if isolating is not None:  # it was alone: it is the one that kills workers
                    yield isolating[0], None, _died_message(str(isolating[1]))
                    pending = {f: i for f, i in pending.items() if i is not isolating}
                    isolating = None
                suspects.extend(pending.values())
                pending.clear()
                pool.rebuild()
    finally:
        for future in pending:
            future.cancel()
