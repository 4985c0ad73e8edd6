"""``itagger export``: ratings and per-image tables as Parquet/CSV, or a BN export."""

from __future__ import annotations

import argparse

from itagger_lib.commands import open_workspace
from itagger_lib.export import available_formats


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="write ratings and the per-image table with their provenance")
    p.add_argument("out", help="output folder (created if missing)")
    p.add_argument(
        "--format", choices=available_formats(), default="parquet", help="file format (default: parquet)"
    )
    p.add_argument("--run", type=int, help="science run id for metrics (default: the newest)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    try:
        for path in ws.export(args.out, format=args.format, run=args.run):
            print(path)
    finally:
        ws.close()
    return 0
