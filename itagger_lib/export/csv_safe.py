"""CSV cells a spreadsheet would run as formulas, neutralised (OWASP "CSV injection").

A text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is
written with a leading apostrophe (``'=HYPERLINK(...)``): spreadsheets show it as text and
never evaluate it. Numbers are untouched: numeric columns are not looked at, and a text cell
that is a plain number (``-1.5``, ``+3``) cannot be a formula and stays as it is. Parquet
files and the database keep the original text; only CSV output changes (docs/security.md).
"""

from __future__ import annotations

import re

import pandas as pd

__all__ = ["FORMULA_START", "csv_safe", "neutral_cell"]

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")


def neutral_cell(cell: object) -> object:
    """``cell`` with a leading ``'`` when it is text a spreadsheet would run as a formula."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def _column(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = list(series.cat.categories)
        safe = [neutral_cell(c) for c in categories]
        if safe == categories:
            return series
        if len(set(safe)) == len(safe):
            return series.cat.rename_categories(safe)
        series = series.astype(object)
    if not (series.dtype == object or pd.api.types.is_string_dtype(series.dtype)):
        return series  # numbers, booleans, times: never formulas
    first = (
        series.str[:1]
        if pd.api.types.is_string_dtype(series.dtype)
        else series.map(lambda c: c[:1] if isinstance(c, str) else None)
    )
    risky = first.isin(FORMULA_START).fillna(False).astype(bool)
    if not risky.any():
        return series
    out = series.astype(object).copy()
    out[risky] = series[risky].map(neutral_cell)
    return out


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every formula-like text cell, column name and index label neutralised."""
    out = frame.copy(deep=False)
    for i in range(frame.shape[1]):
        out.isetitem(i, _column(frame.iloc[:, i]))
    out.columns = pd.Index([neutral_cell(c) for c in frame.columns], name=frame.columns.name)
    if frame.index.dtype == object or pd.api.types.is_string_dtype(frame.index.dtype):
        out.index = pd.Index(_column(pd.Series(frame.index, dtype=frame.index.dtype)), name=frame.index.name)
    return out
