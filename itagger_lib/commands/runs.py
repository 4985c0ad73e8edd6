"""``itagger runs`` and ``itagger failures``: what ran, how it ended, and what it could not do."""

from __future__ import annotations

import argparse

from itagger_lib.commands import open_workspace
from itagger_lib.commands._tables import add_format_option, print_table

#: the columns ``itagger runs`` shows in text; csv and json give every column
RUN_COLUMNS = ["kind", "status", "started_at", "created_by", "n_total", "n_done", "n_failed", "error"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("runs", help="list runs (ingest, science, vlm, import, batch), newest first")
    p.add_argument("--kind", help="only runs of this kind: ingest, science, vlm, import or batch")
    p.add_argument("--limit", type=int, default=20, help="at most this many runs (default 20; 0: all)")
    add_format_option(p)
    p.set_defaults(func=cmd_runs)
    p = subparsers.add_parser("failures", help="the recorded failures of a run (default: of every run)")
    p.add_argument("run", nargs="?", type=int, help="a run id, as `itagger runs` lists them")
    add_format_option(p)
    p.set_defaults(func=cmd_failures)


def cmd_runs(args: argparse.Namespace) -> int:
    runs = open_workspace(args).runs(args.kind)
    if args.limit > 0:
        runs = runs.head(args.limit)
    if args.table_format == "text":
        runs = runs[RUN_COLUMNS].rename(columns={"created_by": "user", "n_total": "total"})
        runs = runs.rename(columns={"n_done": "done", "n_failed": "failed"})
    kind = f" of kind {args.kind}" if args.kind else ""
    print_table(runs, args.table_format, index=True, empty=f"no runs{kind} yet")
    return 0


def cmd_failures(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    failures = ws.failures(args.run)
    if args.table_format == "text":
        names = ws.images()["source_name"]
        failures = failures.assign(file=failures["image_id"].map(names))
        failures = failures[["run_id", "input", "image_id", "file", "reason"]]
    which = f"run {args.run}" if args.run is not None else "any run"
    print_table(failures, args.table_format, empty=f"no failures recorded for {which}", limit=240)
    return 0
