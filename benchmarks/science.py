"""Science throughput, scaling and memory, against decode-only throughput measured in the same run.

    python benchmarks/science.py [--n 120] [--skip-dask] [--skip-4n]

On N photo-like 1600×1200 JPEGs (generated; each file distinct), prints:

* decode-only ``cv2.imread`` images/s, one process — the bound;
* the full default suite (decode at reduced size + every metric) with 1 and 2 processes,
  on a Dask ``LocalCluster`` with 2 single-threaded workers, and on a ``dask scheduler``
  with 2 ``dask worker`` processes started on their own (tasks by store-relative name, as
  ``itagger science --scheduler`` sends them), against 2 local processes measured just
  before it; each executor is warmed
  up (workers started, modules imported) on a few images first, so the rates are steady
  state; the 1-process rate is also given per CPU second of the worker, which other load
  on the machine does not change much;
* the cost of each metric family in ms on one working-resolution image;
* peak RSS of a whole ``ws.run_science`` (main process and largest worker) for N and 4N;
* the load average before and after.

Targets: full suite ≥ 0.33 × decode-only per process; 2 processes ≥ 1.8 × one; peak RSS at
4N within 1.25 × that at N. On a 2-core machine the 2-process figure is bounded by the
cores, and other load on the machine shows in it: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def default_executor(workers: int):  # type: ignore[no-untyped-def]
    from itagger_lib.science.parallel import default_executor as make

    return make(workers)


def write_files(folder: Path, n: int) -> list[Path]:
    sys.path.insert(0, str(Path(__file__).parent))
    from ingest import write_files as write_jpegs

    write_jpegs(folder, n)
    return sorted(folder.iterdir())


def decode_only(files: list[Path]) -> float:
    import cv2

    cv2.setNumThreads(1)
    start = time.perf_counter()
    for path in files:
        cv2.imread(str(path), cv2.IMREAD_COLOR)
    return len(files) / (time.perf_counter() - start)


def suite_rate(files: list[Path], executor: object, warm: int = 4, params: dict | None = None) -> float:
    """Images/s of the full suite through ``executor``, after ``warm`` untimed images."""
    from itagger_lib.science import map_images

    items = [(i, str(p), 1600, 1200) for i, p in enumerate(files)]
    list(map_images(items[:warm], params, executor=executor))
    start = time.perf_counter()
    errors = [e for _, _, e in map_images(items, params, executor=executor) if e]
    seconds = time.perf_counter() - start
    assert not errors, errors[:3]
    return len(files) / seconds


def separate_cluster_rate(files: list[Path], folder: Path, workers: int = 2) -> float:
    """Images/s through a ``dask scheduler`` and ``workers`` separate ``dask worker`` processes
    (``--nthreads 1``), started as docs/scale.md starts them, tasks by store-relative name."""
    import socket

    from distributed import Client

    from itagger_lib.science import map_images
    from itagger_lib.store import ImageStore, sha256_file

    store = ImageStore(folder / "store")
    items = []
    for i, path in enumerate(files):
        sha = sha256_file(path)
        store.put(path, sha, "jpg")
        items.append((i, store.relpath(sha, "jpg"), 1600, 1200))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = [str(Path(sys.executable).with_name("dask"))]
    env = {**os.environ, "ITAGGER_STORE": str(store.root)}
    repo = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env.get("PYTHONPATH")]))
    log = open(folder / "cluster.log", "wb")  # noqa: SIM115 - the processes write it
    processes = [
        subprocess.Popen(
            [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    ]
    try:
        for n in range(workers):
            command = [*dask, "worker", address, "--name", f"w{n}", "--nthreads", "1", "--no-dashboard"]
            processes.append(
                subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
            )
        with Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(workers, timeout=120)
            list(map_images(items, None, executor=client))  # every worker has imported the suite
            start = time.perf_counter()
            errors = [e for _, _, e in map_images(items, None, executor=client) if e]
            seconds = time.perf_counter() - start
        assert not errors, errors[:3]
        return len(files) / seconds
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait()
        log.close()


def worker_cpu_seconds(pool: object) -> float:
    """User + system CPU seconds used so far by the worker processes of a process pool."""
    import psutil

    total = 0.0
    for process in getattr(pool, "_processes", {}).values():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(process.pid).cpu_times()
            total += times.user + times.system
    return total


def child_rss(folder: str, home: str) -> dict[str, float]:
    """Peak RSS of this process and of its largest worker, sampled every 0.1 s."""
    import threading

    import psutil

    from itagger_lib import Workspace

    peaks = {"main_mb": 0.0, "worker_mb": 0.0}
    done = threading.Event()

    def sample() -> None:
        me = psutil.Process()
        while not done.is_set():
            peaks["main_mb"] = max(peaks["main_mb"], me.memory_info().rss / 2**20)
            for child in me.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    peaks["worker_mb"] = max(peaks["worker_mb"], child.memory_info().rss / 2**20)
            done.wait(0.1)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    ws = Workspace(home=home)
    ws.ingest(folder, progress=False)
    with default_executor(2) as pool:
        report = ws.run_science(progress=False, executor=pool)
    done.set()
    thread.join()
    assert report.computed and not report.failed
    return peaks


def run_rss(folder: Path, home: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(folder), str(home)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=120)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--skip-4n", action="store_true")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_rss(*args.child)))
        return 0

    import cv2

    from itagger_lib.imaging import load_rgb
    from itagger_lib.science import family_costs

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="itagger-bench-science-"))
    rows: list[tuple[str, str, str, str]] = []
    ok = True
    try:
        files = write_files(work / "n", args.n)
        decode_only(files[:10])  # warm the page cache
        bound = decode_only(files)
        rows.append(("bound: cv2.imread decode only, 1 process", f"{bound:.1f} img/s", "", ""))
        with default_executor(1) as pool:
            suite_rate(files[:4], pool)  # start the worker untimed, before counting its CPU
            cpu_start = worker_cpu_seconds(pool)
            one = suite_rate(files, pool, warm=0)
            one_cpu = len(files) / max(worker_cpu_seconds(pool) - cpu_start, 1e-9)
        passed = one >= 0.33 * bound
        ok &= passed
        rows.append(
            (
                "full suite, 1 process",
                f"{one:.1f} img/s",
                f"{one / bound:.2f}× decode (≥ 0.33)",
                "PASS" if passed else "FAIL",
            )
        )
        rows.append(
            (
                "full suite, 1 process, per CPU second",
                f"{one_cpu:.1f} img/s",
                f"{one_cpu / bound:.2f}× decode",
                "info",
            )
        )
        # what a smaller working resolution would give (a definition change, for reference)
        with default_executor(1) as pool:
            for side in (768, 512):
                rate = suite_rate(files, pool, params={"working_long_side": side})
                rows.append(
                    (
                        f"  same at working_long_side={side}",
                        f"{rate:.1f} img/s",
                        f"{rate / bound:.2f}× decode",
                        "info",
                    )
                )
        with default_executor(2) as pool:
            two = suite_rate(files, pool)
        passed = two >= 1.8 * one
        ok &= passed
        rows.append(
            (
                "full suite, 2 processes",
                f"{two:.1f} img/s",
                f"{two / one:.2f}× 1 process (≥ 1.8)",
                "PASS" if passed else "FAIL",
            )
        )
        if not args.skip_dask:
            from distributed import Client, LocalCluster

            with (
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                Client(cluster) as client,
            ):
                client.run(_worker_init)
                dask_rate = suite_rate(files, client)
            rows.append(
                (
                    "full suite, Dask LocalCluster 2×1",
                    f"{dask_rate:.1f} img/s",
                    f"{dask_rate / one:.2f}× 1 process",
                    "info",
                )
            )
            # a lab's set-up (docs/scale.md): a scheduler and 2 workers started on their own
            with default_executor(2) as pool:
                local = suite_rate(files, pool)
            separate = separate_cluster_rate(files, work / "cluster")
            rows.append(("full suite, 2 local processes (again)", f"{local:.1f} img/s", "", "info"))
            rows.append(
                (
                    "full suite, dask scheduler + 2 workers",
                    f"{separate:.1f} img/s",
                    f"{separate / local:.2f}× 2 local processes",
                    "info",
                )
            )
        cv2.setNumThreads(1)
        costs = family_costs(load_rgb(files[0]), repeats=7)
        notes = {"resize": "1600×1200 → 1024×768", "total": "suite incl. resize, planes shared"}
        for name, ms in costs.items():
            rows.append(
                (f"  cost: {name}", f"{ms:.1f} ms", notes.get(name, "one 1024×768 working image"), "")
            )
        small = run_rss(work / "n", work / "home_n")
        rows.append(
            (
                f"peak RSS, N={args.n} (main / worker)",
                f"{small['main_mb']:.0f}/{small['worker_mb']:.0f} MB",
                "",
                "",
            )
        )
        if not args.skip_4n:
            write_files(work / "4n", 4 * args.n)
            large = run_rss(work / "4n", work / "home_4n")
            ratio = max(large["main_mb"] / small["main_mb"], large["worker_mb"] / small["worker_mb"])
            passed = ratio <= 1.25
            ok &= passed
            rows.append(
                (
                    f"peak RSS, 4N={4 * args.n} (main / worker)",
                    f"{large['main_mb']:.0f}/{large['worker_mb']:.0f} MB",
                    f"{ratio:.2f}× N (≤ 1.25)",
                    "PASS" if passed else "FAIL",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()

    print(f"\nScience benchmark: N={args.n} JPEGs of 1600×1200, {os.cpu_count()} cores")
    print(
        "load average (1/5/15 min) before the suite runs: "
        + "/".join(f"{x:.2f}" for x in load_before)
        + "; at the end: "
        + "/".join(f"{x:.2f}" for x in load_after)
        + "\n"
    )
    print(f"| {'measure':42} | {'value':>14} | {'against the bound':26} | result |")
    print(f"|{'-' * 44}|{'-' * 16}|{'-' * 28}|--------|")
    for measure, value, against, result in rows:
        print(f"| {measure:42} | {value:>14} | {against:26} | {result:6} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
