"""VLM engine throughput against a loopback OpenAI-compatible server with fixed latency.

    python benchmarks/vlm.py [--calls 500] [--concurrency 16] [--latency 0.2]
                             [--postgres URL] [--rounds 1]

The server (``tests/fakes/vlm_server.py``, asyncio, its own process) answers every request
after ``latency`` seconds. ``--images`` distinct generated images are ingested and each is
asked ``calls / images`` times (distinct repeat indexes, so every call is a distinct cache
key). Reported, with the client's and the server's CPU per request:

* the ideal bound ``calls × latency / concurrency``;
* the bare ``openai`` SDK sending the same requests with the same concurrency (no
  database, no validation), in the same run: ``chat.completions.create`` on its default
  httpx client, and ``client.post`` of a prebuilt body on its aiohttp transport (what the
  engine's provider does);
* ``rate_with_vlm`` wall time (target ≤ 1.2 × the ideal bound) on SQLite and, with
  ``--postgres`` (a server URL; a fresh database is created and dropped), PostgreSQL;
* a rerun: requests sent (target 0) and wall time.

``--rounds`` repeats everything (fresh databases) and reports each round and the median:
on a shared machine single runs vary by ±10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _pg import drop_pg, fresh_pg

ATTRIBUTES = ["coherence", "complexity", "setting"]


class ServerProcess:
    """The fake server in its own process, so it does not share the benchmark's GIL."""

    def __init__(self, latency: float) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.vlm_server", "--latency", str(latency)],
            cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        self.openai_url = self.url + "/v1"

    def count(self) -> int:
        with urllib.request.urlopen(self.url + "/count") as response:
            return int(json.loads(response.read())["requests"])

    def cpu(self) -> float:
        import psutil

        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


async def bare_sdk(url: str, calls: int, concurrency: int, image: bytes, fast: bool) -> float:
    """The same requests from the bare SDK: ``create`` on httpx, or ``post`` on aiohttp."""
    import openai

    http = {"http_client": openai.DefaultAioHttpClient()} if fast else {}
    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0, **http)
    semaphore = asyncio.Semaphore(concurrency)
    data = base64.b64encode(image).decode()
    schema = {
        "type": "object",
        "properties": {"x": {"type": "integer", "enum": [1, 2, 3]}},
        "required": ["x"],
    }
    body: dict[str, Any] = {
        "model": "bench",
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "rate"},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
                ],
            }
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
    }
    content = json.dumps(body).encode()

    async def one() -> None:
        async with semaphore:
            if fast:
                json.loads(await client.post("/chat/completions", cast_to=str, content=content))
            else:
                await client.chat.completions.create(**body)

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    seconds = time.perf_counter() - start
    await client.close()
    return seconds


def measure(server: ServerProcess, calls: int, fn: Any) -> tuple[Any, float, float, int]:
    """``fn()``'s result, client and server CPU ms per call, and the requests it sent."""
    before, cpu, server_cpu = server.count(), time.process_time(), server.cpu()
    result = fn()
    client_ms = (time.process_time() - cpu) * 1000 / calls
    server_ms = (server.cpu() - server_cpu) * 1000 / calls
    return result, client_ms, server_ms, server.count() - before


def one_round(
    args: argparse.Namespace, server: ServerProcess, tmp: Path, round_: int
) -> list[tuple[Any, ...]]:
    import itagger_lib as it
    from itagger_lib.imaging import encode_jpeg, load_rgb
    from itagger_lib.vlm.ledger import set_price

    repeats = max(1, args.calls // args.images)
    calls = repeats * args.images
    rows: list[tuple[Any, ...]] = []
    first = sorted((tmp / "images").iterdir())[0]
    image = encode_jpeg(load_rgb(first, 1024))
    for label, fast in (("bare SDK create (httpx)", False), ("bare SDK post (aiohttp)", True)):

        def bare(fast: bool = fast) -> float:
            return asyncio.run(bare_sdk(server.openai_url, calls, args.concurrency, image, fast))

        seconds, client_ms, server_ms, sent = measure(server, calls, bare)
        rows.append((label, seconds, client_ms, server_ms, sent))
    targets = [("SQLite", f"sqlite:///{tmp}/bench-{round_}.db", None)]
    if args.postgres:
        url, name = fresh_pg(args.postgres)
        targets.append(("PostgreSQL", url, name))
    for db, url, name in targets:
        try:
            ws = it.Workspace(database_url=url, store=tmp / f"store-{round_}", home=tmp / "home")
            ws.ingest(tmp / "images", progress=False)
            ws.load_codebook()  # the documented once-per-workspace step, not part of a run
            set_price(ws, "openai", "bench-model", 0.15, 0.6)
            kwargs = dict(
                provider="openai",
                model="bench-model",
                attributes=ATTRIBUTES,
                repeats=repeats,
                concurrency=args.concurrency,
                progress=False,
                provider_options={"base_url": server.openai_url},
            )
            run = functools.partial(ws.rate_with_vlm, **kwargs)
            for label in (f"rate_with_vlm ({db})", f"rerun, {db} (cache)"):
                report, client_ms, server_ms, sent = measure(server, calls, run)
                assert report.succeeded + report.cache_hits == calls, str(report)
                rows.append((label, report.seconds, client_ms, server_ms, sent))
            ws.close()
        finally:
            if name is not None:
                drop_pg(args.postgres, name)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--postgres", help="a PostgreSQL server URL (a fresh database is created and dropped)"
    )
    args = parser.parse_args()

    import openai  # noqa: F401  (imported before timing, as in a notebook that has run before)

    from itagger_lib.samples import write_samples

    os.environ.setdefault("OPENAI_API_KEY", "loopback-benchmark-key")
    repeats = max(1, args.calls // args.images)
    calls = repeats * args.images
    bound = calls * args.latency / args.concurrency
    load_before = os.getloadavg()
    rounds = []
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(args.latency) as server:
        write_samples(Path(tmp) / "images", n=args.images)
        for round_ in range(args.rounds):
            rounds.append(one_round(args, server, Path(tmp), round_))
    load_after = os.getloadavg()

    print(
        f"\nVLM engine: {calls} calls ({args.images} images × {repeats} repeats), "
        f"concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms, "
        f"{args.rounds} round(s); load average {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    columns = f"{'client ms/call':>16}{'server ms/call':>16}{'requests':>10}"
    print(f"{'what':<34}{'seconds':>9}{'× ideal':>9}{columns}")
    print(f"{'ideal bound calls×latency/conc.':<34}{bound:>9.2f}{1.0:>9.2f}{'':>16}{'':>16}{calls:>10}")
    for index, (label, *_rest) in enumerate(rounds[0]):
        values = [r[index] for r in rounds]
        seconds = statistics.median(v[1] for v in values)
        client_ms = statistics.median(v[2] for v in values)
        server_ms = statistics.median(v[3] for v in values)
        sent = max(v[4] for v in values)
        each = " (" + ", ".join(f"{v[1]:.2f}" for v in values) + ")" if args.rounds > 1 else ""
        cpu = f"{client_ms:>16.2f}{server_ms:>16.2f}"
        print(f"{label:<34}{seconds:>9.2f}{seconds / bound:>9.2f}{cpu}{sent:>10}{each}")
    for index, (label, *_rest) in enumerate(rounds[0]):
        if label.startswith("rate_with_vlm"):
            seconds = statistics.median(r[index][1] for r in rounds)
            bare = statistics.median(r[0][1] for r in rounds)
            resent = max(r[index + 1][4] for r in rounds)
            print(
                f"  {label}: {'PASS' if seconds <= 1.2 * bound else 'FAIL'} ≤ 1.2 × ideal bound "
                f"({seconds / bound:.2f}×, {seconds / bare:.2f}× bare SDK create); "
                f"rerun {'PASS' if resent == 0 else 'FAIL'} ({resent} requests)"
            )


if __name__ == "__main__":
    main()
