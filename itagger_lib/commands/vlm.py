"""``itagger vlm rate|dry-run|audit|prices``: VLM ratings under a hard budget."""

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
    setp = prices_sub.add_parser("set", help="set a price")
    setp.add_argument("provider")
    setp.add_argument("model")
    setp.add_argument("input_per_mtok", type=float)
    setp.add_argument("output_per_mtok", type=float)
    prices.set_defaults(func=cmd_prices)


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
    table, report = audit_vlm(open_workspace(args), k=args.k, **kwargs)
    print(report)
    print(table.to_string())
    return 0


def cmd_prices(args: argparse.Namespace) -> int:
    from itagger_lib.vlm import ledger

    ws = open_workspace(args)
    if args.prices_command == "set":
        ledger.set_price(ws, args.provider, args.model, args.input_per_mtok, args.output_per_mtok)
    print(ledger.prices(ws).to_string(index=False))
    return 0
