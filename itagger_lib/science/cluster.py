"""A Dask cluster as a science run sees it: reach it, check its workers, watch them.

A lab scales past one machine with a ``dask scheduler`` and ``dask worker`` processes of
its own (docs/scale.md). Tasks carry store-relative names (``ab/cd/<sha256>.<ext>``, the
content hash and extension), never the client's paths: each worker reads the store where
*its* ``ITAGGER_STORE`` says it is mounted (:func:`store_file`).

Client side: :func:`connect` reaches the scheduler within the run's ``cluster_timeout`` or
raises one :class:`~itagger_lib.errors.ClusterError`; :func:`check_workers` runs our
version check (:func:`environment`: the packages whose versions change the values; a
difference refuses the run) and Dask's own (its wire packages; a difference is a note, as
Dask itself only warns) and asks each worker whether it can read the store;
:class:`Watch` counts the workers while a run waits, stops it with
:class:`~itagger_lib.errors.ClusterLostError` after ``cluster_timeout`` seconds without
any, and turns the scheduler's ``remove-worker`` events into notes (which tasks of the run
a lost worker was running, and so were retried).

Worker side: :func:`check_environment` and :func:`store_file`, called by each task, so a
worker that joins after the run started is held to the same rules.
"""

from __future__ import annotations

import contextlib
import os
import platform
import queue
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itagger_lib._version import __version__
from itagger_lib.config import store_path
from itagger_lib.errors import ClusterError, ClusterLostError, ScienceError, remedy

if TYPE_CHECKING:
    from distributed import Client

__all__ = [
    "CONNECT_CAP",
    "Watch",
    "check_environment",
    "check_workers",
    "connect",
    "dask_mismatch",
    "environment",
    "mismatch",
    "store_file",
    "store_problem",
    "worker_report",
]

#: Longest wait for a scheduler that does not answer (Dask's own connect timeout is 30 s).
CONNECT_CAP = 30.0
#: How often a waiting run asks the scheduler how many workers it has.
POLL_SECONDS = 1.0

_environment: dict[str, str] | None = None
_checked: dict[str, str] | None = None
_readable_store: Path | None = None


def environment() -> dict[str, str]:
    """The versions that decide a science value, by package (this process's).

    itagger_lib (the metric code), Python (major.minor: the interpreter's micro releases do
    not touch numerical code), numpy, OpenCV and SciPy (the arithmetic) and Pillow (decodes
    WebP, TIFF and BMP). scikit-image is not here: the suite does not call it at run time
    (it only defines what some metrics must equal, in the tests).
    """
    global _environment
    if _environment is None:
        import cv2
        import numpy
        import PIL
        import scipy

        _environment = {
            "itagger_lib": __version__,
            "Python": ".".join(platform.python_version_tuple()[:2]),
            "numpy": numpy.__version__,
            "OpenCV": cv2.__version__,
            "SciPy": scipy.__version__,
            "Pillow": PIL.__version__,
        }
    return dict(_environment)


def mismatch(mine: Mapping[str, str], theirs: Mapping[str, str]) -> str | None:
    """The first package whose version differs, in words (``"numpy 2.4.6 here, 2.3.1 there"``),
    or ``None`` when all agree."""
    for package, version in mine.items():
        other = theirs.get(package, "missing")
        if other != version:
            return f"{package} {other} (the client has {version})"
    return None


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return f"the Dask worker {get_worker().address}"
    except Exception:  # not inside a worker (a test, a plain process)
        return f"the worker process {os.getpid()}"


def _version_message(worker: str, difference: str) -> str:
    return (
        f"{worker} has {difference}: its values would differ from the client's, so the run is "
        "refused; install the same versions on every worker and on the client "
        "(`pip install -c constraints.txt 'image-tagger[dask]'` from the same checkout, or the "
        "same image) or stop that worker (docs/scale.md)"
    )


def check_environment(expected: Mapping[str, str]) -> None:
    """In a worker: raise :class:`ClusterError` when its versions differ from ``expected``."""
    global _checked
    if _checked == expected:
        return
    difference = mismatch(expected, environment())
    if difference:
        raise ClusterError(_version_message(_worker_name(), difference))
    _checked = dict(expected)


def store_problem(root: Path, samples: Sequence[str] = ()) -> str | None:
    """Why ``root`` is not a readable image store holding ``samples`` (relative names), or ``None``."""
    if not root.exists():
        return "there is no such folder"
    if not root.is_dir():
        return "it is not a folder"
    if not os.access(root, os.R_OK | os.X_OK):
        return "this worker's user may not read it"
    if samples and not any((root / name).is_file() for name in samples):
        return f"none of this run's images is there (it looked for {root / samples[0]})"
    return None


def _store_message(worker: str, root: Path, problem: str, from_env: bool) -> str:
    where = "its ITAGGER_STORE" if from_env else "ITAGGER_HOME/store, as ITAGGER_STORE is not set for it"
    return (
        f"{worker} cannot read the image store at {root} ({where}): {problem}; start the worker "
        "with ITAGGER_STORE set to where the workspace's store is mounted on its machine "
        "(docs/scale.md)"
    )


def store_file(name: str, samples: Sequence[str] = ()) -> str:
    """In a worker: the path of the stored file ``name`` (``ab/cd/<sha256>.<ext>``) under the
    worker's own store (:func:`~itagger_lib.config.store_path`).

    Until the worker has read one file there, a missing file makes it look at the store
    itself: a store that is not mounted, not readable or holds none of ``samples`` raises
    one :class:`ClusterError` naming the path it tried, which stops the run, instead of a
    failure per image. A single missing file in a readable store is that image's failure.
    """
    global _readable_store
    root = store_path()
    path = root / name
    if _readable_store == root:
        return str(path)
    if path.is_file():
        _readable_store = root
        return str(path)
    problem = store_problem(root, [name, *samples])
    if problem:
        raise ClusterError(
            _store_message(_worker_name(), root, problem, bool(os.environ.get("ITAGGER_STORE")))
        )
    return str(path)


def worker_report(samples: Sequence[str] = ()) -> dict[str, Any]:
    """In a worker (through ``client.run``): its versions, its store and what is wrong with it
    (only asked when the run's tasks carry store-relative ``samples``)."""
    root = store_path()
    return {
        "environment": environment(),
        "store": str(root),
        "from_env": bool(os.environ.get("ITAGGER_STORE")),
        "problem": store_problem(root, samples) if samples else None,
    }


def connect(address: str, timeout: float) -> Client:
    """A client of the scheduler at ``address``, or one :class:`ClusterError` saying it cannot be
    reached within ``timeout`` seconds (at most :data:`CONNECT_CAP`)."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ScienceError(
            "a Dask scheduler was given but dask.distributed is not installed; "
            "pip install 'image-tagger[dask]'"
        ) from exc
    wait = min(timeout, CONNECT_CAP)
    try:
        return Client(address, timeout=wait, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        option = remedy("scheduler=", "--scheduler")
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address} ({reason}); start it "
            f"(`dask scheduler`), check the address and that its port is open, or run without "
            f"{option} (docs/scale.md)"
        ) from None


def _dask_packages(message: str) -> list[str]:
    """The package names in the rows of Dask's version-mismatch table."""
    names = []
    for line in message.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.lstrip().startswith("|") and cells and cells[0] not in ("", "Package"):
            names.append(cells[0])
    return names


def dask_mismatch(versions: Mapping[str, Any]) -> str | None:
    """What Dask's own version check says of ``client.get_versions()`` (its wire packages:
    dask, distributed, msgpack, cloudpickle, tornado, toolz), as a note, or ``None``.

    Dask only warns about these (a mismatch may still work, and does not change a value),
    so a run goes on and keeps the warning as a note.
    """
    from distributed.versions import error_message

    text = error_message(versions["scheduler"], versions["workers"], versions["client"])["warning"]
    if not text:
        return None
    packages = ", ".join(_dask_packages(text)) or " ".join(text.split())[:200]
    return (
        f"Dask's own version check: the client, scheduler and workers run different versions of "
        f"{packages}; Dask may still work, but install the same versions everywhere (docs/scale.md)"
    )


def check_workers(client: Client, samples: Sequence[str], expected: Mapping[str, str]) -> list[str]:
    """Refuse a cluster whose workers would compute other values or cannot read the store.

    Asks every connected worker for :func:`worker_report` and raises
    :class:`ClusterError` naming the first worker whose versions differ from ``expected``
    or who cannot read its store; returns notes (Dask's own version check,
    :func:`dask_mismatch`). Workers that join later are checked by their first task.
    """
    address = client.scheduler.address
    versions: Mapping[str, Any] = client.get_versions()  # type: ignore[assignment]  # a sync client
    notes = [note] if (note := dask_mismatch(versions)) else []
    try:
        reports = client.run(worker_report, list(samples))
    except ImportError as exc:
        raise ClusterError(
            f"a worker of the Dask cluster at {address} cannot import itagger_lib ({exc}); install "
            "image-tagger[dask], the client's version, on every worker (docs/scale.md)"
        ) from None
    for worker, report in sorted(reports.items()):
        difference = mismatch(expected, report["environment"])
        if difference:
            raise ClusterError(_version_message(f"the Dask worker {worker}", difference))
        if report["problem"]:
            worker_name = f"the Dask worker {worker}"
            raise ClusterError(
                _store_message(worker_name, Path(report["store"]), report["problem"], report["from_env"])
            )
    return notes


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%H:%M:%S UTC")


class Watch:
    """The workers of ``client`` while a run waits on them, and what happened to them.

    ``tasks`` maps the keys of the run's tasks to their number of images (the caller fills
    it). :meth:`poll` returns notes (a worker left while running some of the run's tasks,
    which the scheduler retried; workers came back) and raises :class:`ClusterLostError`
    once the cluster has had no worker, or the client no scheduler, for ``timeout``
    seconds. Events arrive on the client's thread; notes are made on the caller's.
    """

    def __init__(self, client: Client, timeout: float) -> None:
        self.client = client
        self.timeout = timeout
        self.address = client.scheduler.address
        self.tasks: dict[str, int] = {}
        self._events: queue.SimpleQueue[tuple[float, dict[str, Any]]] = queue.SimpleQueue()
        self._since: float | None = None  # monotonic time when the last worker went
        self._last_left: str | None = None
        self._last_poll = 0.0
        self._workers = self._count()
        client.subscribe_topic("all", self._events.put)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # the client is closing or already gone
            self.client.unsubscribe_topic("all")

    def _count(self) -> int:
        if self.client.status != "running":
            return 0
        try:
            return int(self.client.scheduler_info(n_workers=0).get("n_workers", 0))
        except Exception:  # the scheduler went away between the status and the call
            return 0

    def poll(self) -> list[str]:
        notes = self._drain()
        now = time.monotonic()
        if now - self._last_poll < POLL_SECONDS:
            return notes
        self._last_poll = now
        self._workers = self._count()
        if self._workers:
            if self._since is not None:
                notes.append(
                    f"{self._workers} worker(s) connected after {now - self._since:.0f} s without "
                    "any; the run went on"
                )
            self._since = None
            return notes
        self._since = self._since if self._since is not None else now
        if now - self._since >= self.timeout:
            raise ClusterLostError(self._lost_message())
        return notes

    def _lost_message(self) -> str:
        option = remedy("cluster_timeout=", "--cluster-timeout")
        if self.client.status != "running":
            what = f"the Dask scheduler at {self.address} has not answered for {self.timeout:g} s"
        else:
            what = f"no Dask worker has been connected to {self.address} for {self.timeout:g} s"
            if self._last_left:
                what += f" (the last one, {self._last_left}, left)"
        return (
            f"{what}: the run stops; its finished images are kept. Start workers "
            f"(`dask worker {self.address}`) and run the science again, which resumes; "
            f"{option} sets how long to wait"
        )

    def _drain(self) -> list[str]:
        notes: list[str] = []
        while True:
            try:
                timestamp, message = self._events.get_nowait()
            except queue.Empty:
                return notes
            if not isinstance(message, dict) or message.get("action") != "remove-worker":
                continue
            worker = str(message.get("worker", "?"))
            self._last_left = worker
            keys = [key for key in message.get("processing-tasks", ()) if key in self.tasks]
            how = "closed" if message.get("expected") else "lost: killed, crashed or cut off"
            if keys:
                images = sum(self.tasks[key] for key in keys)
                notes.append(
                    f"{_clock(timestamp)} worker {worker} left the cluster ({how}) while running "
                    f"{len(keys)} task(s) of this run ({images} images), which the scheduler gives "
                    "to another worker"
                )
            else:
                notes.append(
                    f"{_clock(timestamp)} worker {worker} left the cluster ({how}); none of this "
                    "run's tasks was running there"
                )
