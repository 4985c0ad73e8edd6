"""VLM engine throughput against a loopback OpenAI-compatible server with fixed latency.

    python benchmarks/vlm.py [--calls 500] [--concurrency 16] [--latency 0.2] [--postgres URL]

The server (``tests/fakes/vlm_server.py``) answers every request after ``latency`` seconds.
``--images`` distinct generated images are ingested and each is asked ``calls / images``
times (distinct repeat indexes, so every call is a distinct cache key). Reported:

* the ideal bound ``calls × latency / concurrency``;
* the measured bound: the same requests sent by the bare ``openai`` SDK with the same
  concurrency (no database, no validation), in the same run;
* ``rate_with_vlm`` wall time (target ≤ 1.2 × the ideal bound);
* a rerun: requests sent (target 0) and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


class ServerProcess:
    """The fake server in its own process, so it does not share the benchmark's GIL."""

    def __init__(self, latency: float) -> None:
        import subprocess

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
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + "/count") as response:
            return int(json.loads(response.read())["requests"])

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=10)


ATTRIBUTES = ["coherence", "complexity", "setting"]


async def bare_sdk(url: str, calls: int, concurrency: int, image: bytes) -> float:
    import base64

    import openai

    client = openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0)
    semaphore = asyncio.Semaphore(concurrency)
    data = base64.b64encode(image).decode()
    schema = {
        "type": "object",
        "properties": {"x": {"type": "integer", "enum": [1, 2, 3]}},
        "required": ["x"],
    }

    async def one() -> None:
        async with semaphore:
            await client.chat.completions.create(
                model="bench",
                messages=[
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "rate"},
                            {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{data}"}},
                        ],
                    }
                ],
                response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
            )

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    seconds = time.perf_counter() - start
    await client.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--images", type=int, default=25)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--postgres", help="also a Postgres database URL (a fresh database is not created)")
    args = parser.parse_args()

    import itagger_lib as it
    from itagger_lib.imaging import encode_jpeg, load_rgb
    from itagger_lib.samples import write_samples
    from itagger_lib.vlm.ledger import set_price

    os.environ.setdefault("OPENAI_API_KEY", "loopback-benchmark-key")
    repeats = max(1, args.calls // args.images)
    calls = repeats * args.images
    bound = calls * args.latency / args.concurrency
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(args.latency) as server:
        write_samples(Path(tmp) / "images", n=args.images)
        urls = [("sqlite", f"sqlite:///{tmp}/bench.db")]
        if args.postgres:
            urls.append(("postgres", args.postgres))
        first = sorted((Path(tmp) / "images").iterdir())[0]
        measured = asyncio.run(
            bare_sdk(server.openai_url, calls, args.concurrency, encode_jpeg(load_rgb(first, 1024)))
        )
        for name, url in urls:
            ws = it.Workspace(database_url=url, store=Path(tmp) / f"store-{name}", home=Path(tmp) / "home")
            ws.ingest(Path(tmp) / "images", progress=False)
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
            before = server.count()
            first_run = ws.rate_with_vlm(**kwargs)
            sent = server.count() - before
            before = server.count()
            rerun = ws.rate_with_vlm(**kwargs)
            rows.append((name, first_run, sent, rerun, server.count() - before))
            ws.close()

    print(
        f"\nVLM engine: {calls} calls ({args.images} images × {repeats} repeats), "
        f"concurrency {args.concurrency}, server latency {args.latency * 1000:.0f} ms"
    )
    print(f"{'what':<34}{'seconds':>10}{'× ideal':>10}{'requests':>10}")
    print(f"{'ideal bound calls×latency/conc.':<34}{bound:>10.2f}{1.0:>10.2f}{calls:>10}")
    print(f"{'bare openai SDK, same server':<34}{measured:>10.2f}{measured / bound:>10.2f}{calls:>10}")
    for name, first_run, sent, rerun, resent in rows:
        print(
            f"{'rate_with_vlm ' + name:<34}{first_run.seconds:>10.2f}{first_run.seconds / bound:>10.2f}"
            f"{sent:>10}"
        )
        print(
            f"{'rerun (cache) ' + name:<34}{rerun.seconds:>10.2f}{rerun.seconds / bound:>10.2f}{resent:>10}"
        )
        ideal = "PASS" if first_run.seconds <= 1.2 * bound else "FAIL"
        same = "PASS" if first_run.seconds <= 1.2 * measured else "FAIL"
        print(
            f"  {name}: {ideal} ≤ 1.2 × ideal bound; {same} ≤ 1.2 × bare-SDK bound "
            f"({first_run.seconds / measured:.2f}×); rerun {'PASS' if resent == 0 else 'FAIL'} "
            f"({resent} requests); {first_run.succeeded} rated, {len(first_run.failed)} failed"
        )


if __name__ == "__main__":
    main()
