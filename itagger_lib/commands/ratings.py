"""``itagger ratings``: import ratings collected elsewhere, and inter-rater agreement."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from itagger_lib.commands import open_workspace
from itagger_lib.commands._tables import add_format_option, print_table
from itagger_lib.errors import ArgumentError, ImageNotFoundError, RatingError
from itagger_lib.ratings.imports import ERRORS, IF_IMPORTED, ImportReport
from itagger_lib.ratings.recording import SOURCES
from itagger_lib.workspace import Workspace

if TYPE_CHECKING:
    from itagger_lib.codebook import CodebookRef

READERS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".parquet": "parquet", ".json": "json"}


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ratings", help="import ratings collected elsewhere; inter-rater agreement")
    sub = p.add_subparsers(dest="ratings_command", metavar="ACTION", required=True)

    imp = sub.add_parser(
        "import",
        help="import a long table (image, rater, attribute, value[, rated_at, note]) of ratings",
        description=(
            "Import ratings from paper forms or a survey tool: one row per image x rater x "
            "attribute. image: an image id, 8+ hex digits of its SHA-256, or the file name it "
            "was ingested from. Every row is checked against the codebook first."
        ),
    )
    imp.add_argument("file", help="CSV, TSV, Parquet or JSON (records) file")
    imp.add_argument("--codebook", help="codebook id, stored name, or YAML file (default: the newest)")
    imp.add_argument("--source", choices=SOURCES, default="import", help="(default: import)")
    imp.add_argument("--mode", choices=("blind", "assisted"), default="blind", help="(default: blind)")
    imp.add_argument(
        "--errors",
        choices=ERRORS,
        default="raise",
        help="raise: store nothing if any row is invalid (default); skip: store the valid rows",
    )
    imp.add_argument(
        "--if-imported",
        choices=IF_IMPORTED,
        default="fail",
        help="when the same rows were imported before: fail (default), skip, or append them again",
    )
    imp.set_defaults(func=cmd_import)

    agr = sub.add_parser("agreement", help="inter-rater agreement per attribute")
    agr.add_argument("--attributes", help="comma-separated attribute keys (default: all rated)")
    agr.add_argument("--raters", help="comma-separated raters (default: all human and imported raters)")
    agr.add_argument("--by", help="group by 'collection' or a science bin (bin.<metric>)")
    agr.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates for alpha's 95%% CI")
    agr.add_argument("--out", help="write the table as CSV to this file instead of printing it")
    add_format_option(agr)
    agr.set_defaults(func=cmd_agreement)


def read_table(path: str | Path) -> pd.DataFrame:
    """A ratings table from a file, by its extension, its rows numbered for messages as the
    user sees them: CSV and TSV by spreadsheet line (the header is line 1; blank lines count
    and are dropped), JSON by record and Parquet by row, both from 1."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise ArgumentError(
            f"{path}: cannot read {path.suffix or 'a file without extension'}; give a .csv, .tsv, "
            ".parquet or .json file (save a spreadsheet as CSV)"
        )
    if not path.is_file():
        raise ArgumentError(f"{path}: no such file")
    try:
        if kind == "parquet":
            return _numbered(pd.read_parquet(path), "row", 1)
        if kind == "json":
            return _numbered(pd.read_json(path, orient="records"), "record", 1)
        # image references stay text: a SHA-256 prefix of digits must not become a number
        frame = pd.read_csv(
            path,
            sep="\t" if kind == "tsv" else _delimiter(path),
            dtype={"image": str},
            skip_blank_lines=False,
        )
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise ArgumentError(f"{path}: not a readable {kind} table ({exc})") from None
    frame = _numbered(frame, "line", 2)
    return frame.dropna(how="all")


def _numbered(frame: pd.DataFrame, name: str, first: int) -> pd.DataFrame:
    frame.index = pd.RangeIndex(first, first + len(frame), name=name)
    return frame


def _delimiter(path: Path) -> str:
    """The header line's delimiter: ``,``, or ``;`` as spreadsheets write CSV in many locales."""
    with path.open(encoding="utf-8-sig", errors="replace") as handle:
        header = handle.readline()
    try:
        return csv.Sniffer().sniff(header, delimiters=",;\t").delimiter
    except csv.Error:
        return ","


def _codebook(ws: Workspace, value: str | None) -> CodebookRef:
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    if Path(value).is_file():
        return value  # a YAML file: stored (or found, if stored before) by add_ratings
    return ws.codebook(value)


def cmd_import(args: argparse.Namespace) -> int:
    frame = read_table(args.file)
    ws = open_workspace(args)
    try:
        report = _add(ws, frame, args)
    finally:
        ws.close()
    print(report)
    for problem in report.problems[:20]:
        print(f"  skipped {problem}", file=sys.stderr)
    if len(report.problems) > 20:
        more = len(report.problems) - 20
        print(f"  ... and {more} more (all in `itagger failures {report.run_id}`)", file=sys.stderr)
    return 0


def _add(ws: Workspace, frame: pd.DataFrame, args: argparse.Namespace) -> ImportReport:
    """``ws.add_ratings`` for the file, its errors prefixed with the file's name."""
    try:
        return ws.add_ratings(
            frame,
            codebook=_codebook(ws, args.codebook),
            source=args.source,
            mode=args.mode,
            errors=args.errors,
            if_imported=args.if_imported,
            name=Path(args.file).name,
        )
    except (RatingError, ImageNotFoundError) as exc:
        raise type(exc)(f"{args.file}: {exc}") from None


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def cmd_agreement(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    try:
        table = ws.agreement(
            attributes=_split(args.attributes), raters=_split(args.raters), by=args.by, n_boot=args.n_boot
        )
    finally:
        ws.close()
    if args.out:
        from itagger_lib.export.csv_safe import csv_safe

        csv_safe(table).to_csv(args.out, index=False)
        print(args.out)
    else:
        print_table(table, args.table_format, empty="no ratings to compare yet")
    return 0
