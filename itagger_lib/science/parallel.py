"""The I/O edge of the science pipeline: decode inside workers, map over many images.

:func:`analyse_file` runs in a worker process: it decodes one file (at reduced size where
the JPEG decoder allows it), applies EXIF orientation and calls
:func:`~itagger_lib.science.metrics.compute_metrics`. :func:`map_images` streams many
images through any :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``
with a bounded number of tasks in flight, so memory stays flat with the number of images
(the Dask side is :mod:`~itagger_lib.science.dask_map`).
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import cv2
import numpy as np

from itagger_lib.errors import ScienceError
from itagger_lib.imaging import decode_rgb
from itagger_lib.science.metrics import compute_metrics, resolve_params
from itagger_lib.science.working import working_size

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

Item = tuple[Any, str, int | None, int | None]
# Images per Dask task: a Dask task costs milliseconds of scheduler and worker time, a
# sizeable share of one image's suite, so tasks of a few images amortise it.
DASK_BATCH = 4
Outcome = tuple[Any, dict[str, float] | None, str | None]
# Longest wait for a result from a pool before the caller's tick gets a turn.
TICK_SECONDS = 0.5


def decode_for_science(
    path: str | Path, long_side: int, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """:func:`itagger_lib.imaging.decode_rgb` for a stored ``width`` x ``height`` (reduced
    JPEG decode when the working ``long_side`` allows it, full size otherwise).

    Raises
    ------
    ImageError
        :class:`~itagger_lib.errors.CorruptImageError` or
        :class:`~itagger_lib.errors.UnreadableFileError` naming the path.
    """
    return decode_rgb(path, long_side, max(int(width), int(height)) if width and height else None)


def analyse_file(
    path: str,
    params: Mapping[str, Any] | None = None,
    width: int | None = None,
    height: int | None = None,
) -> dict[str, float]:
    """Decode one image file and compute its metrics (runs inside a worker process).

    ``width`` and ``height`` are the stored (oriented) size; with them a JPEG is decoded at
    reduced size. Raises an :class:`~itagger_lib.errors.ImageError` naming ``path`` when the
    file cannot be read or decoded, :class:`~itagger_lib.errors.ScienceError` for bad params.
    """
    _configure_worker()
    resolved = resolve_params(params)
    long_side = resolved["working_long_side"]
    rgb = decode_for_science(path, long_side, width, height)
    if width and height:
        rgb = _to_working_size(rgb, int(width), int(height), long_side)
    return compute_metrics(rgb, resolved)


def _to_working_size(rgb: np.ndarray, width: int, height: int, long_side: int) -> np.ndarray:
    """A reduced decode brought to the working size of the *stored* ``width`` x ``height``.

    The decoder rounds reduced sides up (``ceil(w / k)``), so the working size computed from
    the decoded image can be a pixel larger than the one computed from the stored size (2048
    x 1365 decodes at 1/2 to 1024 x 683, whose working size is itself, while the stored size
    gives 1024 x 682). Resizing to the stored size's working size keeps
    ``meta.working_width``/``meta.working_height`` the same whichever way a file is decoded.
    """
    decoded = (rgb.shape[1], rgb.shape[0])
    target = working_size(width, height, long_side)
    reduced = any(decoded == (-(-width // k), -(-height // k)) for k in (2, 4, 8))
    if not reduced or decoded == target or decoded[0] < target[0] or decoded[1] < target[1]:
        return rgb
    return cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_worker_configured = False


def _keep_large_blocks_on_the_heap() -> bool:
    """Let glibc reuse the few-MB blocks of the metric temporaries instead of mapping them.

    By default glibc serves blocks above a (dynamic) threshold with ``mmap`` and returns them
    on ``free``, so each of the suite's dozens of 1-10 MB temporaries costs fresh zeroed
    pages; under Dask, whose nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` (which also pins
    that threshold at 128 KiB), the suite ran twice as slowly as in a plain pool. Blocks up
    to 32 MiB from the heap, and the heap trimmed only past 64 MiB free, make it 10-25 %
    faster in a pool and undo the Dask penalty; the heap stays at the suite's peak (flat
    with the number of images). Returns whether it applied (glibc only).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 64 << 20))


def _configure_worker() -> None:
    """In a child process (a pool or Dask worker): one OpenCV thread, large blocks kept.

    The pool supplies the parallelism: N workers each running OpenCV's own N threads would
    oversubscribe the cores. Executors made by the caller (a ``ProcessPoolExecutor``, a Dask
    cluster) get this on their first task; the caller's own process is left alone. A child
    made by plain ``fork`` keeps OpenCV's thread setting: if the parent had started OpenCV's
    threads, ``cv2.setNumThreads`` in the child waits for threads that were not copied, for
    ever (one more reason to use :func:`default_executor`, or a ``spawn``/``forkserver`` pool).
    """
    global _worker_configured
    if _worker_configured or multiprocessing.parent_process() is None:
        return
    _worker_configured = True
    fork_process = getattr(multiprocessing.context, "ForkProcess", None)
    if fork_process is not None and isinstance(multiprocessing.current_process(), fork_process):
        _keep_large_blocks_on_the_heap()
    else:
        _worker_init()


def _worker_init() -> None:
    # One OpenCV thread per worker process: the pool supplies the parallelism.
    global _worker_configured
    _worker_configured = True
    cv2.setNumThreads(1)
    _keep_large_blocks_on_the_heap()
    _exit_with_parent()


def one_opencv_thread() -> None:
    """Configure a worker that is no child process (a Dask worker started ``--no-nanny``) as
    :func:`_configure_worker` configures children: one OpenCV thread, large blocks kept.

    Some OpenCV reductions round differently with more threads (``colour.lightness_mean``
    of one image in twelve moved by one unit in the last place), so every worker runs the
    suite on one thread and all of them compute the same bits.
    """
    if not _worker_configured:
        _worker_init()


def _exit_with_parent() -> None:
    """End this pool worker as soon as the process that made the pool dies, however it died.

    A pool's workers leave only when told to; if the parent is killed (a notebook kernel
    killed or out of memory, ``kill -9`` on a run) they wait on their queue for ever, each
    holding a few hundred MB, with the fork server and resource tracker kept alive by them
    (CPython issue 111873). A daemon thread waits on the parent sentinel multiprocessing
    hands every child and exits when it fires; the fork server then sees its last child go
    and exits too. Not ``PR_SET_PDEATHSIG``: that follows the parent *thread*, and a pool
    may be started from a short-lived one.
    """
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(1)

    threading.Thread(target=watch, name="itagger-exit-with-parent", daemon=True).start()


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


def describe(exc: BaseException) -> str:
    """An exception as a one-line reason (``"CorruptImageError: …"``)."""
    return f"{type(exc).__name__}: {exc}"


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
