"""Images over a Dask cluster: tasks of a few images, a bounded number in flight, no silent wait.

:func:`map_dask` is what :func:`~itagger_lib.science.parallel.map_images` runs for a
``dask.distributed.Client``. Before the first task it checks the connected workers
(:func:`~itagger_lib.science.cluster.check_workers`); every task carries the client's
package versions and a few of the run's store-relative names, so a worker that joins later
is checked by its first task (:func:`analyse_batch`). While results are awaited it polls
(every :data:`WAIT_SECONDS`): the caller's ``tick`` (a run writes its results on a timer),
the cluster's notes (a worker lost with tasks of the run, which the scheduler retries) and
the time without workers, after which :class:`~itagger_lib.errors.ClusterLostError` stops
the run. On the way out, however it is left (Ctrl-C included), the tasks still in flight
are cancelled with one call.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from itagger_lib.errors import ClusterError, ClusterLostError
from itagger_lib.science.cluster import Watch, check_environment, check_workers, environment, store_file
from itagger_lib.science.worker import Item, Outcome, analyse_file, describe, one_opencv_thread

__all__ = ["SAMPLES", "WAIT_SECONDS", "analyse_batch", "map_dask"]

#: Longest wait for a result before the watch, the notes and the caller's tick get a turn.
WAIT_SECONDS = 0.25
#: Store-relative names every task carries, for a worker to tell "no store" from "one file missing".
SAMPLES = 3

File = tuple[str, int | None, int | None]
BatchOutcome = list[tuple[dict[str, float] | None, str | None]]


def analyse_batch(
    batch: list[File],
    params: Mapping[str, Any],
    expected: Mapping[str, str] | None = None,
    samples: Sequence[str] = (),
) -> BatchOutcome:
    """In a worker: :func:`analyse_file` over a few files, ``(metrics, None)`` or ``(None, error)``.

    OpenCV runs on one thread, as in every pool worker: some of its reductions round
    differently with more threads, which would change the last bit of a value. A relative
    name is read from the worker's own store
    (:func:`~itagger_lib.science.cluster.store_file`). With ``expected`` (the client's
    versions) a worker whose versions differ raises
    :class:`~itagger_lib.errors.ClusterError`, as does one that cannot read its store: the
    task fails as a whole, and the client stops the run with that one message.
    """
    if expected is not None:
        check_environment(expected)
    if multiprocessing.parent_process() is None and _in_dask_worker():
        one_opencv_thread()  # a worker started with --no-nanny (or threads in the caller's process)
    outcomes: BatchOutcome = []
    for path, width, height in batch:
        file = path if os.path.isabs(path) else store_file(path, samples)
        try:
            outcomes.append((analyse_file(file, params, width, height), None))
        except Exception as exc:
            outcomes.append((None, describe(exc)))
    return outcomes


def _in_dask_worker() -> bool:
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):  # called outside a worker: leave this process alone
        return False
    return True


def map_dask(
    items: Iterable[Item],
    params: dict[str, Any],
    client: Any,
    limit: int,
    batch: int,
    *,
    timeout: float,
    tick: Callable[[], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> Iterator[Outcome]:
    """Yield ``(image_id, metrics, error)`` as tasks of ``batch`` images complete on ``client``.

    At most ``limit`` images in flight. Raises :class:`~itagger_lib.errors.ClusterError`
    when a worker's versions or store are wrong, and
    :class:`~itagger_lib.errors.ClusterLostError` after ``timeout`` seconds without workers
    or when the scheduler drops the run's tasks. A task whose workers keep dying
    (``KilledWorker``) fails its images, and the run goes on.
    """
    source = iter(items)
    head = list(itertools.islice(source, SAMPLES))
    samples = [str(path) for _, path, *_ in head if not os.path.isabs(str(path))]
    source = itertools.chain(head, source)
    expected = environment()
    for text in check_workers(client, samples, expected):
        if note is not None:
            note(text)
    watch = Watch(client, timeout)
    finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
    pending: dict[str, tuple[Any, list[Any]]] = {}
    in_flight = 0

    def fill() -> None:
        nonlocal in_flight
        while in_flight < limit:
            chunk = list(itertools.islice(source, batch))
            if not chunk:
                return
            files = [(str(path), width, height) for _, path, width, height in chunk]
            future = client.submit(analyse_batch, files, params, expected, samples, pure=False)
            pending[future.key] = (future, [image_id for image_id, *_ in chunk])
            watch.tasks[future.key] = len(chunk)
            in_flight += len(chunk)
            future.add_done_callback(finished.put)

    def turn() -> None:
        """What waiting gives a turn to: the cluster's notes, its time without workers, the tick."""
        for text in watch.poll():
            if note is not None:
                note(text)
        if tick is not None:
            tick()

    try:
        fill()
        while pending:
            try:
                future = finished.get(timeout=WAIT_SECONDS)
            except queue.Empty:
                future = None
            turn()
            entry = pending.pop(future.key, None) if future is not None else None
            if entry is None:
                continue
            image_ids = entry[1]
            in_flight -= len(image_ids)
            outcomes = _outcomes(future, len(image_ids), turn, watch.address)
            for image_id, (values, error) in zip(image_ids, outcomes, strict=True):
                yield image_id, values, error
            fill()
        turn()  # a worker lost near the end is noted too
    finally:
        watch.close()
        leftover = [future for future, _ in pending.values()]
        pending.clear()
        if leftover:
            with contextlib.suppress(Exception):
                client.cancel(leftover)


def _outcomes(future: Any, n: int, turn: Callable[[], None], address: str) -> BatchOutcome:
    """The results of a finished task, fetched from its worker.

    If that worker dies before they are fetched, the scheduler computes the task again, so
    the fetch waits in turns of :data:`WAIT_SECONDS` (the run's clock keeps running).
    """
    from distributed import CancelledError

    try:
        while True:
            try:
                return list(future.result(timeout=WAIT_SECONDS))
            except TimeoutError:
                turn()
    except ClusterError:
        raise
    except CancelledError:
        raise ClusterLostError(
            f"the Dask scheduler at {address} dropped this run's tasks (it restarted, or the "
            "connection to it was lost): the run stops; its finished images are kept, and "
            "running the science again resumes"
        ) from None
    except Exception as exc:  # the task as a whole failed (KilledWorker: its workers died)
        return [(None, describe(exc))] * n
    finally:
        future.release()
