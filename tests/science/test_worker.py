"""Decoding inside workers, reduced decode, EXIF orientation, and map_images on executors."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from itagger_lib.errors import CorruptImageError, UnreadableFileError
from itagger_lib.imaging import imread_rgb
from itagger_lib.samples import facade
from itagger_lib.science import analyse_file, compute_metrics, map_images
from itagger_lib.science.parallel import decode_for_science
from itagger_lib.science.working import working_size


def _jpeg(path, rgb, quality=92):
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return str(path)


def test_reduced_decode_applies_exif_orientation(tmp_path):
    stored = np.zeros((1200, 2400, 3), np.uint8)
    stored[:, :300] = 255  # a white band on the left of the stored (unrotated) pixels
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # display rotated 90° clockwise: the band ends up on top
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif.tobytes(), quality=95)
    full = decode_for_science(path, 1024)
    reduced = decode_for_science(path, 512, width=1200, height=2400)
    assert full.shape == (2400, 1200, 3)
    assert reduced.shape == (600, 300, 3)  # decoded at 1/4
    assert full[:200].mean() > 250 and full[-200:].mean() < 5
    assert reduced[:50].mean() > 250 and reduced[-50:].mean() < 5


def test_png_is_decoded_at_full_size(tmp_path):
    rgb = facade(2048, 1536, seed=2)
    path = tmp_path / "facade.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert decode_for_science(path, 1024, 2048, 1536).shape == (1536, 2048, 3)
    assert analyse_file(str(path), None, 2048, 1536) == compute_metrics(rgb)
    # thumbnails and VLM images share the decode: a PNG is area-resized, never reduce-decoded
    from itagger_lib.imaging import fit_long_side, load_rgb

    assert np.array_equal(load_rgb(path, 512, size_hint=2048), fit_long_side(rgb, 512))


def test_undecodable_and_missing_files_name_the_path(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    with pytest.raises(CorruptImageError, match=r"garbage\.jpg") as info:
        analyse_file(str(garbage), None, 100, 100)
    assert info.value.path == str(garbage)
    with pytest.raises(UnreadableFileError, match=r"missing\.jpg"):
        analyse_file(str(tmp_path / "missing.jpg"), None)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch")
    items = []
    for seed in range(3):
        rgb = facade(1600, 1200, seed=seed)
        items.append((f"img{seed}", _jpeg(folder / f"f{seed}.jpg", rgb), 1600, 1200))
    broken = folder / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xdb truncated")
    items.append(("broken", str(broken), 1600, 1200))
    serial = {image_id: analyse_file(path, None, w, h) for image_id, path, w, h in items[:3]}
    return items, serial


def _check(outcomes, serial):
    outcomes = {image_id: (values, error) for image_id, values, error in outcomes}
    assert set(outcomes) == {*serial, "broken"}
    for image_id, expected in serial.items():
        values, error = outcomes[image_id]
        assert error is None
        assert values == expected  # bit-identical floats
    values, error = outcomes["broken"]
    assert values is None and "CorruptImageError" in error and "broken.jpg" in error


def test_process_pool_is_bit_identical_to_serial_twice(batch):
    items, serial = batch
    for _ in range(2):
        with cf.ProcessPoolExecutor(2) as pool:
            _check(map_images(items, None, executor=pool), serial)


def test_default_executor(batch):
    items, serial = batch
    _check(map_images(items, {}, max_in_flight=2), serial)


def test_in_flight_is_bounded_and_items_are_consumed_lazily(batch):
    items, _ = batch
    submitted = []

    def source():
        for _ in range(4):
            for item in items[:3]:
                submitted.append(item[0])
                yield item

    seen = 0
    with cf.ThreadPoolExecutor(2) as pool:
        for _image_id, values, error in map_images(source(), None, pool, max_in_flight=3):
            seen += 1
            assert error is None and values is not None
            assert len(submitted) - seen <= 3
    assert seen == 12


@pytest.mark.slow
def test_dask_cluster_is_bit_identical_to_serial_twice(batch):
    distributed = pytest.importorskip("distributed")
    items, serial = batch
    with distributed.Client(
        processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None
    ) as client:
        for _ in range(2):
            _check(map_images(items, None, executor=client, max_in_flight=3), serial)
        # By default tasks carry several images (DASK_BATCH); a broken file fails alone.
        outcomes = list(map_images(items * 3, None, executor=client))
        assert sorted(image_id for image_id, _, _ in outcomes) == sorted(i for i, *_ in items * 3)
        _check(outcomes, serial)


def test_rgb_decode_equals_bgr_decode_and_channel_swap(tmp_path):
    rgb = facade(2400, 1800, seed=4)
    jpeg = _jpeg(tmp_path / "f.jpg", rgb)
    png = tmp_path / "f.png"
    cv2.imwrite(str(png), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    for path, flag in (
        (jpeg, cv2.IMREAD_COLOR),
        (jpeg, cv2.IMREAD_REDUCED_COLOR_2),
        (str(png), cv2.IMREAD_COLOR),
    ):
        expected = cv2.cvtColor(cv2.imread(path, flag), cv2.COLOR_BGR2RGB)
        assert np.array_equal(imread_rgb(Path(path), flag), expected)


@pytest.mark.parametrize("size", [(2048, 1365), (2111, 1409), (4033, 3025), (1200, 2401), (4096, 3072)])
def test_reduced_decode_gives_the_working_size_of_the_stored_size(tmp_path, size):
    width, height = size
    path = _jpeg(
        tmp_path / "odd.jpg", cv2.resize(facade(1024, 768, seed=5), size, interpolation=cv2.INTER_LINEAR)
    )
    reduced = decode_for_science(path, 1024, width, height)
    assert max(reduced.shape[:2]) < max(size)  # decoded at 1/2 or less
    expected = working_size(width, height, 1024)
    for values in (analyse_file(path, None, width, height), analyse_file(path, None)):
        assert (values["meta.working_width"], values["meta.working_height"]) == expected


def _threads_after_analysis(path):
    analyse_file(path, None, 1600, 1200)
    return cv2.getNumThreads()


def test_workers_of_any_pool_run_opencv_on_one_thread(batch):
    items, _ = batch
    with cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(_threads_after_analysis, items[0][1]).result() == 1
    if multiprocessing.parent_process() is None:  # the caller's own process is left alone
        before = cv2.getNumThreads()
        analyse_file(items[0][1], None, 1600, 1200)
        assert cv2.getNumThreads() == before


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_forked_workers_of_a_threaded_parent_do_not_hang(batch):
    # A forked child must not reconfigure OpenCV's threads: the parent's pool threads were
    # not copied, and cv2.setNumThreads would wait for them for ever.
    items, serial = batch
    cv2.GaussianBlur(facade(1600, 1200, seed=1), (0, 0), 3)  # starts OpenCV's threads here
    pool = cf.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    try:
        future = pool.submit(analyse_file, items[0][1], None, 1600, 1200)
        assert future.result(timeout=120) == serial[items[0][0]]
    finally:
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)


class _WorkerKiller:
    """SIGKILLs every process that opens ``fifo`` for reading: a worker dying mid-image.

    Reading the FIFO blocks until a writer opens it; this thread opens it (non-blocking, so
    it never waits itself), finds the processes holding it open and kills them, as the
    kernel's OOM killer or a crashing decoder would end a worker.
    """

    def __init__(self, fifo: Path) -> None:
        import threading

        self.fifo = fifo
        self.kills = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)

    def _readers(self) -> list[int]:
        import os

        found = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit() or int(proc.name) == os.getpid():
                continue
            try:
                links = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
            except OSError:
                continue
            if str(self.fifo) in links:
                found.append(int(proc.name))
        return found

    def _run(self) -> None:
        import os
        import signal
        import time

        while not self._stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet (ENXIO)
                time.sleep(0.02)
                continue
            try:
                deadline = time.monotonic() + 5
                while not (readers := self._readers()) and time.monotonic() < deadline:
                    time.sleep(0.01)
                for pid in readers:
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
            finally:
                os.close(fd)
            time.sleep(0.05)


def test_a_worker_that_dies_fails_its_image_and_the_run_goes_on(batch, tmp_path):
    import os

    items, serial = batch
    fifo = tmp_path / "kills-its-worker.jpg"
    os.mkfifo(fifo)
    killer_item = ("killer", str(fifo), 1600, 1200)
    # the killer in the middle, with images in flight beside it and more after it
    stream = [*items[:2], killer_item, *items[2:], *items[:2]]
    stream = [(f"{image_id}#{n}", path, w, h) for n, (image_id, path, w, h) in enumerate(stream)]
    with _WorkerKiller(fifo) as killer:
        outcomes = {i: (v, e) for i, v, e in map_images(stream, None, max_in_flight=4)}
    assert len(outcomes) == len(stream)
    values, error = outcomes["killer#2"]
    assert values is None and "WorkerDiedError" in error and str(fifo) in error
    assert "left out and the run went on" in error
    # killed once among others, then once more when run alone: only then is it the culprit
    assert killer.kills == 2
    for key, (values, error) in outcomes.items():
        name = key.split("#")[0]
        if name in serial:
            assert error is None and values == serial[name], key  # bit-identical after the rebuild
        elif name == "broken":
            assert values is None and "CorruptImageError" in error


def test_a_callers_pool_whose_worker_dies_is_reported_not_replaced(batch, tmp_path):
    import os

    from itagger_lib.errors import ScienceError

    items, _ = batch
    fifo = tmp_path / "kills-its-worker.jpg"
    os.mkfifo(fifo)
    stream = [items[0], ("killer", str(fifo), 1600, 1200), items[1]]
    with (
        _WorkerKiller(fifo),
        cf.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool,
        pytest.raises(ScienceError, match=r"executor you passed died.*rerun, which resumes"),
    ):
        list(map_images(stream, None, executor=pool))


_KILLED_PARENT = """
import os, signal, sys
from itagger_lib.science.parallel import default_executor

def pid(_):
    return os.getpid(), os.getppid()

if __name__ == "__main__":
    pool = default_executor(2)
    pids = set(pool.map(pid, range(8)))
    workers = sorted({p for p, _ in pids})
    servers = sorted({q for _, q in pids})
    print(" ".join(map(str, workers)), "|", " ".join(map(str, servers)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no shutdown, no atexit: as a killed kernel
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc (Linux)")
def test_pool_workers_and_fork_server_exit_when_the_parent_is_killed(tmp_path):
    """SIGKILL of the process that made the default pool leaves no worker or fork server."""
    import subprocess
    import sys
    import time

    script = tmp_path / "killed_parent.py"
    script.write_text(_KILLED_PARENT)
    # output to files, not pipes: an orphaned worker would hold a pipe open, and this wait
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run([sys.executable, str(script)], stdout=stdout, stderr=stderr, timeout=120)
    assert done.returncode == -9, err.read_text()
    worker_text, server_text = out.read_text().split("|")
    workers = [int(p) for p in worker_text.split()]
    servers = [int(p) for p in server_text.split()]
    assert workers and servers and not set(workers) & set(servers)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers + servers):
        time.sleep(0.1)
    left = [p for p in workers + servers if _alive(p)]
    for pid in left:  # do not leak them into the rest of the run, then fail
        os.kill(pid, 9)
    assert not left, f"still running after their parent was killed: {left}"
