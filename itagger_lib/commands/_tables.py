"""Tables on standard output: aligned text for people, CSV or JSON for programs.

Every command that prints a table takes ``--format text|csv|json`` (:func:`add_format_option`)
and prints with :func:`print_table`. Text is aligned columns under a header: numbers to the
right, text to the left, empty cells blank, times to the minute, long text cut with ``…``
(``csv`` and ``json`` keep every value in full). An empty table prints ``empty`` (a sentence
saying why and what to do) in text, a header alone in CSV and ``[]`` in JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from collections.abc import Sequence
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FORMATS", "add_format_option", "format_text", "print_table"]

FORMATS = ("text", "csv", "json")
MAX_CELL = 60


def add_format_option(parser: argparse.ArgumentParser, default: str = "text") -> None:
    """``--format text|csv|json`` (stored as ``args.table_format``)."""
    parser.add_argument(
        "--format",
        dest="table_format",
        choices=FORMATS,
        default=default,
        help=f"aligned text for reading, csv or json for programs (default: {default})",
    )


def _missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    try:
        import pandas as pd

        return bool(value is pd.NaT or value is pd.NA)
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False


def _cell(value: Any, limit: int = MAX_CELL) -> str:
    if _missing(value):
        return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = f"{value:.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    elif isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M")
    elif isinstance(value, dict | list):
        text = json.dumps(value, default=str, separators=(",", ":"))
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _numeric(values: Sequence[Any]) -> bool:
    present = [v for v in values if not _missing(v)]
    return bool(present) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)


def format_text(frame: pd.DataFrame, *, index: bool = False, limit: int = MAX_CELL) -> str:
    """``frame`` as aligned columns under a header line (no trailing newline)."""
    table = frame.reset_index() if index else frame
    columns = [str(c) for c in table.columns]
    values = [[v.item() if hasattr(v, "item") else v for v in table[c].tolist()] for c in table.columns]
    cells = [[_cell(v, limit) for v in column] for column in values]
    right = [_numeric(column) for column in values]
    widths = [max([len(name), *(len(c) for c in column)]) for name, column in zip(columns, cells)]

    def line(parts: Sequence[str]) -> str:
        padded = [p.rjust(w) if r else p.ljust(w) for p, w, r in zip(parts, widths, right, strict=True)]
        return "  ".join(padded).rstrip()

    rows = [line(columns)]
    rows += [line([column[i] for column in cells]) for i in range(len(table))]
    return "\n".join(rows)


def print_table(
    frame: pd.DataFrame,
    fmt: str = "text",
    *,
    empty: str = "no rows",
    index: bool = False,
    limit: int = MAX_CELL,
    out: IO[str] | None = None,
) -> None:
    """Write ``frame`` to ``out`` (standard output) as ``text``, ``csv`` or ``json``; text
    cells longer than ``limit`` characters are cut."""
    out = out or sys.stdout
    if fmt == "csv":
        from itagger_lib.export.csv_safe import csv_safe

        csv_safe(frame).to_csv(out, index=index)
    elif fmt == "json":
        table = frame.reset_index() if index else frame
        out.write(table.to_json(orient="records", date_format="iso", force_ascii=False) + "\n")
    elif fmt == "text":
        out.write((format_text(frame, index=index, limit=limit) if len(frame) else empty) + "\n")
    else:
        raise ValueError(f"format {fmt!r}: use one of {', '.join(FORMATS)}")
