"""What runs inside a worker process: decode one file, compute its metrics, set up the worker.

:func:`analyse_file` decodes one file (at reduced size where the JPEG decoder allows it),
applies EXIF orientation and calls :func:`~itagger_lib.science.metrics.compute_metrics`. A
worker of a pool (:mod:`~itagger_lib.science.parallel`) or of a Dask cluster
(:mod:`~itagger_lib.science.dask_map`) is set up once, on its first image: one OpenCV
thread (the pool supplies the parallelism, and some OpenCV reductions round differently
with more threads) and the suite's large temporaries kept on the heap.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from itagger_lib.imaging import decode_rgb
from itagger_lib.science.metrics import compute_metrics, resolve_params
from itagger_lib.science.working import working_size

__all__ = ["Item", "Outcome", "analyse_file", "decode_for_science", "describe", "one_opencv_thread"]

#: One image to analyse: ``(image_id, path, width, height)``.
Item = tuple[Any, str, int | None, int | None]
#: What analysing it gave: ``(image_id, metrics, None)`` or ``(image_id, None, error)``.
Outcome = tuple[Any, dict[str, float] | None, str | None]


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


def describe(exc: BaseException) -> str:
    """An exception as a one-line reason (``"CorruptImageError: …"``)."""
    return f"{type(exc).__name__}: {exc}"
