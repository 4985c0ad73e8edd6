"""The I/O edge of the science pipeline: decode inside workers, map over many images.

:func:`analyse_file` runs in a worker process: it decodes one file (at reduced size where
the JPEG decoder allows it), applies EXIF orientation and calls
:func:`~itagger_lib.science.metrics.compute_metrics`. :func:`map_images` streams many
images through any :class:`concurrent.futures.Executor` or a ``dask.distributed.Client``
with a bounded number of tasks in flight, so memory stays flat with the number of images.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from itagger_lib.errors import CorruptImageError
from itagger_lib.imaging import check_readable, reduced_decode_flag
from itagger_lib.science.metrics import compute_metrics, resolve_params

__all__ = ["analyse_file", "decode_for_science", "default_executor", "map_images"]

Item = tuple[Any, str, int | None, int | None]
Outcome = tuple[Any, dict[str, float] | None, str | None]
_JPEG_MAGIC = b"\xff\xd8\xff"


def _is_jpeg(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(3) == _JPEG_MAGIC
    except OSError:
        return False


def decode_for_science(
    path: str | Path, long_side: int, width: int | None = None, height: int | None = None
) -> np.ndarray:
    """Decode ``path`` to RGB ``uint8`` with EXIF orientation applied, at reduced size if lossless.

    For JPEGs with a known stored size, OpenCV's DCT-domain reduction
    (``IMREAD_REDUCED_COLOR_2/4/8``) is used with the largest factor that keeps the decoded
    long side >= ``long_side``; other formats are decoded at full size (OpenCV would reduce
    them with bilinear resampling, not area averaging). OpenCV applies the EXIF orientation
    for the reduced flags as for ``IMREAD_COLOR`` (checked in ``tests/science``).

    Raises
    ------
    ImageError
        :class:`~itagger_lib.errors.CorruptImageError` or
        :class:`~itagger_lib.errors.UnreadableFileError` naming the path.
    """
    path = Path(path)
    flag = cv2.IMREAD_COLOR
    if width and height and _is_jpeg(path):
        flag = reduced_decode_flag(max(int(width), int(height)), long_side)
    bgr = cv2.imread(str(path), flag)
    if bgr is None:
        check_readable(path)
        raise CorruptImageError(
            path,
            "cannot be decoded for the science metrics; the file is damaged or not an "
            "image (re-copy it, or re-ingest the original)",
        )
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


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
    resolved = resolve_params(params)
    rgb = decode_for_science(path, resolved["working_long_side"], width, height)
    return compute_metrics(rgb, resolved)


def _worker_init() -> None:
    # One OpenCV thread per worker process: the pool supplies the parallelism.
    cv2.setNumThreads(1)


def default_executor(workers: int | None = None) -> cf.ProcessPoolExecutor:
    """A process pool with one worker per core, started with ``forkserver`` (or ``spawn``).

    Forking a process whose OpenCV thread pool is already running can deadlock the child,
    so the workers never inherit the caller's threads; each runs OpenCV single-threaded.
    """
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def map_images(
    items: Iterable[Item],
    params: Mapping[str, Any] | None = None,
    executor: Any = None,
    max_in_flight: int | None = None,
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
        Most tasks submitted but not yet yielded (default 4 x workers).

    Yields
    ------
    (image_id, metrics, error)
        ``metrics`` is the dict of :func:`compute_metrics` and ``error`` None, or ``metrics``
        is None and ``error`` a message naming the file ("CorruptImageError: …"). One
        failing image does not stop the others. Order is completion order.
    """
    resolved = resolve_params(params)
    owned = executor is None
    if owned:
        executor = default_executor()
    limit = max(1, int(max_in_flight or 4 * _worker_count(executor)))
    try:
        if _is_dask_client(executor):
            yield from _map_dask(items, resolved, executor, limit)
        else:
            yield from _map_futures(items, resolved, executor, limit)
    finally:
        if owned:
            executor.shutdown(wait=True, cancel_futures=True)


def _map_futures(
    items: Iterable[Item], params: dict[str, Any], executor: cf.Executor, limit: int
) -> Iterator[Outcome]:
    pending: dict[cf.Future[dict[str, float]], Any] = {}
    source = iter(items)
    exhausted = False
    try:
        while True:
            while not exhausted and len(pending) < limit:
                item = next(source, None)
                if item is None:
                    exhausted = True
                    break
                image_id, path, width, height = item
                future = executor.submit(analyse_file, str(path), params, width, height)
                pending[future] = image_id
            if not pending:
                return
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                image_id = pending.pop(future)
                try:
                    yield image_id, future.result(), None
                except Exception as exc:
                    yield image_id, None, _describe(exc)
    finally:
        for future in pending:
            future.cancel()


def _map_dask(items: Iterable[Item], params: dict[str, Any], client: Any, limit: int) -> Iterator[Outcome]:
    from distributed import as_completed

    ids: dict[str, Any] = {}
    source = iter(items)

    def submit_next() -> Any:
        item = next(source, None)
        if item is None:
            return None
        image_id, path, width, height = item
        future = client.submit(analyse_file, str(path), params, width, height, pure=False)
        ids[future.key] = image_id
        return future

    first = [f for f in (submit_next() for _ in range(limit)) if f is not None]
    if not first:
        return
    completed = as_completed(first)
    try:
        for future in completed:
            image_id = ids.pop(future.key)
            try:
                yield image_id, future.result(), None
            except Exception as exc:
                yield image_id, None, _describe(exc)
            finally:
                future.release()
            following = submit_next()
            if following is not None:
                completed.add(following)
    finally:
        for future in completed.futures if hasattr(completed, "futures") else ():
            future.cancel()
