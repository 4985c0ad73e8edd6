"""``itagger science`` and ``itagger metrics``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from itagger_lib.commands import open_workspace
from itagger_lib.commands._tables import add_format_option, print_table
from itagger_lib.errors import ArgumentError


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: write science parameters as NAME=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("science", help="compute missing science metrics")
    p.add_argument("images", nargs="*", help="image ids or SHA-256 prefixes (default: all)")
    p.add_argument(
        "-p",
        "--param",
        type=_param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a science parameter (see docs/metrics.md)",
    )
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (docs/scale.md)")
    p.add_argument(
        "--cluster-timeout",
        type=float,
        metavar="SECONDS",
        help="with --scheduler: stop (as interrupted) after this long without a scheduler or any "
        "worker (default: ITAGGER_CLUSTER_TIMEOUT, 60)",
    )
    p.set_defaults(func=cmd_science)

    p = subparsers.add_parser(
        "metrics", help="the science metrics, one line per image (id, file name) and a column per metric"
    )
    p.add_argument("--run", type=int, help="a science run id (default: the newest)")
    p.add_argument("--bins", action="store_true", help="add low/mid/high bins with the run's cut points")
    add_format_option(p)
    p.set_defaults(func=cmd_metrics)


def cmd_science(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    executor = None
    if args.workers is not None:
        if args.workers < 1:
            raise ArgumentError(f"--workers must be at least 1, got {args.workers}")
        from itagger_lib.science.parallel import default_executor

        executor = default_executor(args.workers)
    try:
        report = ws.run_science(
            images=args.images or None,
            params=dict(args.param) or None,
            executor=executor,
            scheduler=args.scheduler,
            progress=sys.stderr.isatty(),
            cluster_timeout=args.cluster_timeout,
        )
    finally:
        if executor is not None:
            executor.shutdown()
    print(report)
    return 1 if report.failed and not report.computed else 0


def cmd_metrics(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    metrics = ws.metrics(run=args.run, bins=args.bins)
    names = ws.images()["source_name"]
    metrics.insert(0, "file", names.reindex(metrics.index).to_numpy())
    print_table(
        metrics,
        args.table_format,
        index=True,
        empty="no science metrics yet: run `itagger science` first",
    )
    return 0
