"""Ingest throughput and memory, against a bound measured in the same run.

    python benchmarks/ingest.py [--n 2000] [--postgres URL] [--skip-4n]

Writes N distinct photo-like 1600×1200 JPEGs (a pool of generated facades, each file made
unique by a JPEG comment), then in separate child processes:

* the bound: read every file and hash it with SHA-256, in one process;
* ``Workspace.ingest`` into a fresh SQLite database and a fresh Postgres database;
* peak RSS of the ingest child for N and 4N files (target: flat).

Targets: ingest images/s ≥ 0.5 × the bound; peak RSS at 4N within 1.25 × that at N.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _pg import drop_pg, fresh_pg  # benchmarks/ is on sys.path when run as a script

POOL = 24
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def write_files(folder: Path, n: int) -> None:
    from itagger_lib.samples import jpeg_bytes

    folder.mkdir(parents=True, exist_ok=True)
    pool = [jpeg_bytes(1600, 1200, seed=i) for i in range(POOL)]
    for index in range(n):
        data = pool[index % POOL]
        comment = f"itagger benchmark file {index}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        (folder / f"img_{index:06d}.jpg").write_bytes(data[:2] + segment + data[2:])


def child_hash(folder: str) -> dict[str, float]:
    start = time.perf_counter()
    files = sorted(Path(folder).iterdir())
    for path in files:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "images": len(files)}


def child_hash_copy(folder: str, dest: str) -> dict[str, float]:
    """A second reference: what any ingest must do at least (hash, and write a copy)."""
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    files = sorted(Path(folder).iterdir())
    for path in files:
        with open(path, "rb") as handle:
            hashlib.file_digest(handle, "sha256")
        shutil.copyfile(path, out / path.name)
    os.sync()
    return {"seconds": time.perf_counter() - start, "images": len(files)}


def child_ingest(folder: str, url: str, store: str) -> dict[str, float]:
    from itagger_lib import Workspace

    ws = Workspace(database_url=url, store=store)
    start = time.perf_counter()
    report = ws.ingest(folder, progress=False)
    seconds = time.perf_counter() - start
    assert not report.failed, report.failed[:3]
    return {"seconds": seconds, "images": len(report.added)}


def run_child(*args: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--postgres", default=os.environ.get("ITAGGER_TEST_DATABASE_URL", DEFAULT_PG))
    parser.add_argument("--skip-4n", action="store_true", help="skip the 4N memory run")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        functions = {"hash": child_hash, "hash_copy": child_hash_copy, "ingest": child_ingest}
        result = functions[kind](*rest)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    work = Path(tempfile.mkdtemp(prefix="itagger-bench-ingest-"))
    rows: list[tuple[str, str, str, str]] = []
    ok = True
    try:
        small = work / "n"
        write_files(small, args.n)
        size_mb = sum(p.stat().st_size for p in small.iterdir()) / 1e6
        subprocess.run(["sync"], check=False)
        run_child("hash", str(small))  # warm the page cache, as ingest will find it
        bound = run_child("hash", str(small))
        bound_rate = bound["images"] / bound["seconds"]
        rows.append(("bound: read + SHA-256, 1 process", f"{bound_rate:,.0f} img/s", "", ""))
        copy = run_child("hash_copy", str(small), str(work / "copies"))
        shutil.rmtree(work / "copies")
        copy_rate = copy["images"] / copy["seconds"]
        rows.append(
            (
                "reference: read + SHA-256 + copy + sync",
                f"{copy_rate:,.0f} img/s",
                f"{copy_rate / bound_rate:.2f}× bound",
                "info",
            )
        )
        sqlite = run_child("ingest", str(small), f"sqlite:///{work}/n.db", str(work / "store_n"))
        rate = sqlite["images"] / sqlite["seconds"]
        ok &= rate >= 0.5 * bound_rate
        rows.append(
            (
                "ingest → SQLite",
                f"{rate:,.0f} img/s",
                f"{rate / bound_rate:.2f}× bound (≥ 0.5)",
                "PASS" if rate >= 0.5 * bound_rate else "FAIL",
            )
        )
        url, name = fresh_pg(args.postgres)
        try:
            pg = run_child("ingest", str(small), url, str(work / "store_pg"))
        finally:
            drop_pg(args.postgres, name)
        rate = pg["images"] / pg["seconds"]
        ok &= rate >= 0.5 * bound_rate
        rows.append(
            (
                "ingest → Postgres",
                f"{rate:,.0f} img/s",
                f"{rate / bound_rate:.2f}× bound (≥ 0.5)",
                "PASS" if rate >= 0.5 * bound_rate else "FAIL",
            )
        )
        rows.append((f"peak RSS, N={args.n}", f"{sqlite['peak_rss_mb']:.0f} MB", "", ""))
        if not args.skip_4n:
            shutil.rmtree(work / "store_n")
            big = work / "4n"
            write_files(big, 4 * args.n)
            large = run_child("ingest", str(big), f"sqlite:///{work}/4n.db", str(work / "store_4n"))
            ratio = large["peak_rss_mb"] / sqlite["peak_rss_mb"]
            ok &= ratio <= 1.25
            rows.append(
                (
                    f"peak RSS, 4N={4 * args.n}",
                    f"{large['peak_rss_mb']:.0f} MB",
                    f"{ratio:.2f}× N (≤ 1.25)",
                    "PASS" if ratio <= 1.25 else "FAIL",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nIngest benchmark: N={args.n} JPEGs of 1600×1200 ({size_mb:.0f} MB), {os.cpu_count()} cores\n")
    print(f"| {'measure':40} | {'value':>12} | {'against the bound':24} | result |")
    print(f"|{'-' * 42}|{'-' * 14}|{'-' * 26}|--------|")
    for measure, value, against, result in rows:
        print(f"| {measure:40} | {value:>12} | {against:24} | {result:6} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
