"""``itagger vlm rate|dry-run|audit|prices|batches``: VLM ratings under a hard budget.

Tables are printed from plain rows (:func:`price_rows`, :func:`batch_rows`: lists of dicts),
so a generic ``--format`` printer can take them over.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from itagger_lib.commands import open_workspace


def _rating_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="*", help="image ids or SHA-256 prefixes (default: all)")
    p.add_argument("--provider", help="openai, anthropic or stub (default: setting, env, key present)")
    p.add_argument("--model", help="model name (default: setting vlm.model, ITAGGER_VLM_MODEL)")
    p.add_argument("--base-url", help="OpenAI-compatible server (Ollama, vLLM, LM Studio)")
    p.add_argument("-a", "--attribute", action="append", dest="attributes", help="codebook key (repeatable)")
    p.add_argument("--sample", help="N (random), 'unrated' or 'all'")
    p.add_argument("--sample-seed", type=int, help="seed of the random sample (recorded)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--seed", type=int, help="provider sampling seed")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--budget", type=float, dest="budget_usd", help="hard budget of this run in USD")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    p.add_argument("--force", action="store_true", help="ask again even when cached")
    p.add_argument("--rationale", action="store_true", help="ask for and store a short rationale")
    p.add_argument(
        "--batch",
        action="store_const",
        const="batch",
        default="interactive",
        dest="mode",
        help="use the provider's batch API: half the price, answers within 24 h (rerun to collect)",
    )
    p.add_argument("--wait", type=float, default=0.0, dest="wait_s", help="with --batch: seconds to wait")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("vlm", help="rate images with a vision-language model")
    sub = p.add_subparsers(dest="vlm_command", required=True)
    rate = sub.add_parser("rate", help="rate images (cached, budgeted, resumable)")
    _rating_options(rate)
    rate.set_defaults(func=cmd_rate, dry_run=False)
    dry = sub.add_parser("dry-run", help="count requests and estimate the cost; send nothing")
    _rating_options(dry)
    dry.set_defaults(func=cmd_rate, dry_run=True)
    audit = sub.add_parser("audit", help="self-consistency: K repeats at temperature > 0")
    _rating_options(audit)
    audit.set_defaults(func=cmd_audit, dry_run=False, repeats=5, temperature=0.7)
    audit.add_argument("-k", type=int, default=5, help="answers per image")
    prices = sub.add_parser("prices", help="list or set model prices (USD per million tokens)")
    prices_sub = prices.add_subparsers(dest="prices_command")
    setp = prices_sub.add_parser(
        "set", help="set this workspace's price of a model (overrides the shipped one)"
    )
    setp.add_argument("provider")
    setp.add_argument("model")
    setp.add_argument("input_per_mtok", type=float)
    setp.add_argument("output_per_mtok", type=float)
    setp.add_argument("--cached", type=float, dest="cached_input_per_mtok", help="prompt-cache read price")
    setp.add_argument(
        "--cache-write", type=float, dest="cache_write_per_mtok", help="prompt-cache write price"
    )
    setp.add_argument("--batch-in", type=float, dest="batch_input_per_mtok", help="batch API input price")
    setp.add_argument("--batch-out", type=float, dest="batch_output_per_mtok", help="batch API output price")
    setp.add_argument("--source", help="the page the price was read from")
    prices.set_defaults(func=cmd_prices)
    batches = sub.add_parser(
        "batches", help="poll and collect provider batches (--batch runs), or cancel them"
    )
    batches.add_argument("--no-poll", action="store_false", dest="poll", help="list only; ask no provider")
    batches.add_argument(
        "--cancel",
        nargs="*",
        type=int,
        metavar="ID",
        help="cancel these batches (none given: every open one)",
    )
    batches.set_defaults(func=cmd_batches)


def _kwargs(args: argparse.Namespace) -> dict[str, Any]:
    sample: Any = args.sample
    if sample is not None and sample.isdigit():
        sample = int(sample)
    return {
        "images": args.images or None,
        "attributes": args.attributes,
        "provider": args.provider,
        "model": args.model,
        "sample": sample,
        "sample_seed": args.sample_seed,
        "seed": args.seed,
        "max_tokens": args.max_tokens,
        "concurrency": args.concurrency,
        "budget_usd": args.budget_usd,
        "force": args.force,
        "rationale": args.rationale,
        "timeout": args.timeout,
        "mode": args.mode,
        "wait_s": args.wait_s,
        "progress": sys.stderr.isatty(),
        "provider_options": {"base_url": args.base_url} if args.base_url else None,
    }


def cmd_rate(args: argparse.Namespace) -> int:
    report = open_workspace(args).rate_with_vlm(
        **_kwargs(args), repeats=args.repeats, temperature=args.temperature, dry_run=args.dry_run
    )
    print(report)
    return 1 if report.failed and not report.succeeded else 0


def cmd_audit(args: argparse.Namespace) -> int:
    from itagger_lib.vlm.audit import audit_vlm

    kwargs = _kwargs(args)
    kwargs["temperature"] = args.temperature
    kwargs.pop("wait_s")
    if kwargs.pop("mode") != "interactive":
        print("itagger vlm audit: --batch is for rate; the audit asks interactively", file=sys.stderr)
    table, report = audit_vlm(open_workspace(args), k=args.k, **kwargs)
    print(report)
    print(table.to_string())
    return 0


PRICE_COLUMNS = (
    "provider",
    "model",
    "input",
    "output",
    "cached_input",
    "cache_write",
    "batch_input",
    "batch_output",
    "origin",
    "read_on",
    "age",
)


def price_rows(ws: Any) -> list[dict[str, Any]]:
    """The prices in effect, one dict per model (USD per million tokens; ``age`` says
    ``OLD`` for a price read more than 90 days ago)."""
    from itagger_lib.vlm.prices import price_rows as rows

    return [
        {
            **{k: ("" if r[k] is None else r[k]) for k in PRICE_COLUMNS if k in r},
            "age": "OLD" if r["stale"] else "",
        }
        for r in rows(ws)
    ]


def _print_rows(rows: list[dict[str, Any]], empty: str) -> None:
    import pandas as pd

    print(pd.DataFrame(rows).to_string(index=False) if rows else empty)


def cmd_prices(args: argparse.Namespace) -> int:
    from itagger_lib.vlm.prices import STALE_DAYS, set_price

    ws = open_workspace(args)
    if args.prices_command == "set":
        set_price(
            ws,
            args.provider,
            args.model,
            args.input_per_mtok,
            args.output_per_mtok,
            cached_input_per_mtok=args.cached_input_per_mtok,
            cache_write_per_mtok=args.cache_write_per_mtok,
            batch_input_per_mtok=args.batch_input_per_mtok,
            batch_output_per_mtok=args.batch_output_per_mtok,
            source=args.source,
        )
    _print_rows(price_rows(ws), "no prices")
    print(
        f"USD per million tokens; origin 'shipped' (itagger_lib/data/vlm_prices.csv, with the page each "
        f"was read from) or 'workspace' (itagger vlm prices set); OLD: read more than {STALE_DAYS} days ago"
    )
    return 0


BATCH_COLUMNS = (
    "id",
    "run_id",
    "provider",
    "model",
    "status",
    "provider_status",
    "n_requests",
    "n_succeeded",
    "n_failed",
    "reserved_usd",
    "cost_usd",
    "submitted_at",
    "expires_at",
    "error",
)


def batch_rows(table: Any) -> list[dict[str, Any]]:
    """Rows of :func:`itagger_lib.vlm.batches.batch_table` for printing."""
    frame = table.reset_index()
    return [
        {k: ("" if v is None or v != v else v) for k, v in row.items() if k in BATCH_COLUMNS}
        for row in frame.to_dict("records")
    ]


def cmd_batches(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    if args.cancel is not None:
        table = ws.cancel_vlm_batches(args.cancel or None)
    else:
        table = ws.vlm_batches(poll=args.poll)
    _print_rows(batch_rows(table), "no provider batches (itagger vlm rate --batch submits some)")
    return 0
