"""VLM engine throughput, costs and batch mode against loopback servers.

    python benchmarks/vlm.py [--calls 500] [--concurrency 16] [--latency 0.2]
                             [--postgres URL] [--rounds 1]
    python benchmarks/vlm.py --costs [--images 25]
    python benchmarks/vlm.py --batch [--batch-requests 5000]

``--costs``: the cost per 1,000 images of the full codebook, interactive, interactive with
the prompt cache, in a batch, and in a batch with the cache, for ``gpt-4o-mini`` and
``gpt-4.1-mini`` and ``claude-haiku-4-5`` at the shipped prices, summed from the ledger of runs against the
loopback server. The server bills what the providers' documents say these requests cost:
input tokens = the body's text at 4 bytes a token + the model's image formula, output
tokens = 10 an attribute, and with the cache the codebook prefix (system text and schema,
4 bytes a token) read from it on every request after the first (Anthropic: written by the
first, at the cache-write price).

``--batch``: the wall time of submitting ``--batch-requests`` requests (25 images × repeats,
3 attributes, long side 256 px) as provider batches, and of collecting them, against the
server in its own process; and a rerun, which sends nothing.

The throughput part (no flag):

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

    def __init__(self, latency: float = 0.0) -> None:
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


def _usage(model: str, attributes: int) -> Any:
    """The loopback server's usage: what the provider's documents say the request costs."""
    from itagger_lib.vlm import tokens

    def usage(path: str, body: dict[str, Any], raw: bytes) -> tuple[int, int]:
        anthropic = path.endswith("/messages")
        if anthropic:
            data = body["messages"][0]["content"][0]["source"]["data"]
        else:
            data = body["messages"][1]["content"][0]["image_url"]["url"].split(",", 1)[1]
        import io

        from PIL import Image

        width, height = Image.open(io.BytesIO(base64.b64decode(data))).size
        image = (
            tokens.anthropic_image_tokens(width, height)
            if anthropic
            else tokens.openai_image_tokens(model, width, height)
        )
        return (len(raw) - len(data)) // 4 + image, 10 * attributes

    return usage


COST_MODELS = (("openai", "gpt-4o-mini"), ("openai", "gpt-4.1-mini"), ("anthropic", "claude-haiku-4-5"))


def costs(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, float, float]]:
    """(model, way, USD per 1,000 images, USD per 1,000 images at the dry run's estimate)."""
    import itagger_lib as it
    from itagger_lib.codebook import resolve_codebook
    from itagger_lib.samples import write_samples
    from itagger_lib.vlm.estimate import prefix_tokens
    from itagger_lib.vlm.prices import shipped_prices
    from itagger_lib.vlm.prompts import build_prompt
    from tests.fakes.vlm_server import FakeVLMServer

    write_samples(tmp / "images", n=args.images)
    rows = []
    for provider, model in COST_MODELS:
        price = shipped_prices()[(provider, model)]
        for way, mode, cache in (
            ("interactive", "interactive", False),
            ("interactive + prompt cache", "interactive", True),
            ("batch", "batch", False),
            ("batch + prompt cache", "batch", True),
        ):
            home = tmp / f"{model}-{mode}-{cache}"
            ws = it.Workspace(database_url=f"sqlite:///{home}.db", store=home / "store", home=home)
            ws.ingest(tmp / "images", progress=False)
            book = ws.load_codebook()
            prompt = build_prompt(resolve_codebook(ws, book.id))
            # the loopback server's base URL is a local server: give the model its shipped price
            ws.set_vlm_price(
                provider,
                model,
                price.input_per_mtok,
                price.output_per_mtok,
                cached_input_per_mtok=price.cached_input_per_mtok,
                cache_write_per_mtok=price.cache_write_per_mtok,
                batch_input_per_mtok=price.batch_input_per_mtok,
                batch_output_per_mtok=price.batch_output_per_mtok,
            )
            usage = _usage(model, len(prompt.attributes))
            with FakeVLMServer(usage=usage, prompt_cache=prefix_tokens(prompt) if cache else 0) as server:
                url = server.openai_url if provider == "openai" else server.url
                kwargs: dict[str, Any] = dict(
                    provider=provider,
                    model=model,
                    mode=mode,
                    progress=False,
                    concurrency=1,  # the first request writes the cache before the others read it
                    provider_options={"base_url": url},
                )
                dry = ws.rate_with_vlm(dry_run=True, **kwargs)
                report = ws.rate_with_vlm(wait_s=300, **kwargs)
            assert report.succeeded == args.images, str(report)
            spent = float(ws.vlm_ledger()["cost_usd"].sum())
            estimate = dry.expected_cached_cost_usd if cache else dry.expected_cost_usd
            rows.append((model, way, spent / args.images * 1000, (estimate or 0) / args.images * 1000))
            ws.close()
    return rows


def batch_wall_time(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, float, int]]:
    """(provider, phase, seconds, requests) for a batch of ``--batch-requests`` requests."""
    import itagger_lib as it
    from itagger_lib.samples import write_samples

    write_samples(tmp / "images", n=25)
    repeats = max(1, args.batch_requests // 25)
    rows = []
    with ServerProcess() as server:
        for provider, model in (("openai", "bench-model"), ("anthropic", "bench-claude")):
            ws = it.Workspace(
                database_url=f"sqlite:///{tmp}/batch-{provider}.db", store=tmp / f"s-{provider}"
            )
            ws.ingest(tmp / "images", progress=False)
            ws.load_codebook()
            ws.set_vlm_price(
                provider, model, 0.15, 0.6, batch_input_per_mtok=0.075, batch_output_per_mtok=0.3
            )
            url = server.openai_url if provider == "openai" else server.url
            kwargs: dict[str, Any] = dict(
                provider=provider,
                model=model,
                attributes=ATTRIBUTES,
                repeats=repeats,
                long_side=256,
                mode="batch",
                progress=False,
                provider_options={"base_url": url},
            )
            started = time.perf_counter()
            submitted = ws.rate_with_vlm(**kwargs)
            submit_s = time.perf_counter() - started
            started = time.perf_counter()
            table = ws.vlm_batches()
            collect_s = time.perf_counter() - started
            assert (table["status"] == "collected").all(), table
            started = time.perf_counter()
            before = server.count()
            rerun = ws.rate_with_vlm(**kwargs)
            rerun_s = time.perf_counter() - started
            assert rerun.submitted == 0 and rerun.cache_hits == repeats * 25 and server.count() == before
            rows += [
                (provider, f"submit ({len(submitted.batches)} batch(es))", submit_s, submitted.submitted),
                (provider, "poll + collect", collect_s, int(table["n_succeeded"].sum())),
                (provider, "submit + collect", submit_s + collect_s, submitted.submitted),
                (provider, "rerun (sends nothing)", rerun_s, rerun.submitted),
            ]
            ws.close()
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
    parser.add_argument("--costs", action="store_true", help="cost per 1,000 images (ledger, shipped prices)")
    parser.add_argument("--batch", action="store_true", help="wall time of a batch submission + collection")
    parser.add_argument("--batch-requests", type=int, default=5000)
    args = parser.parse_args()
    if args.costs or args.batch:
        os.environ.setdefault("OPENAI_API_KEY", "loopback-benchmark-key")
        os.environ.setdefault("ANTHROPIC_API_KEY", "loopback-benchmark-key")
        load_before = os.getloadavg()
        with tempfile.TemporaryDirectory() as tmp:
            if args.costs:
                print(f"\nCost per 1,000 images, full codebook, {args.images} images a run, shipped prices")
                print(f"{'model':<20}{'how':<30}{'USD / 1,000 images':>20}{'dry-run estimate':>18}")
                for model, way, usd, estimate in costs(args, Path(tmp) / "costs"):
                    print(f"{model:<20}{way:<30}{usd:>20.3f}{estimate:>18.3f}")
            if args.batch:
                print(f"\nBatch mode: {args.batch_requests} requests, loopback server in its own process")
                print(f"{'provider':<12}{'phase':<28}{'seconds':>9}{'requests':>10}")
                for provider, phase, seconds, n in batch_wall_time(args, Path(tmp) / "batch"):
                    print(f"{provider:<12}{phase:<28}{seconds:>9.2f}{n:>10}")
        load_after = os.getloadavg()
        print(f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
        return

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
