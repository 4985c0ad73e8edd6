"""Import of ratings collected elsewhere (paper forms, survey tools) from a long table.

One import is one run (kind ``import``): its ratings carry the run id, its parameters hold
the codebook, source, row counts and a SHA-256 of the validated rows, and the rows it could
not take are the run's failures (``ws.failures(run_id)``). Rows an earlier import already
stored (same image, rater, attribute and answer; the same time too where the table gives
times) are found one by one, so a second import of a file, or of a survey tool's cumulative
export that repeats last week's respondents, does not silently count their answers twice.

Images are found by id, by 8 or more hex digits of their SHA-256, or by the file name they
were ingested from (``source_name``, where it is unique in the workspace), with one read of
the images table for the whole table (:class:`~itagger_lib.images.ImageIndex`). A blank value
(missing in the table: ``None``, NaN) is an unanswered item: it is counted and skipped, not
an error.

A problem names its row by the table's index: ``row 3`` for a DataFrame (its index label),
``line 5`` when the index is named ``line`` (the CLI numbers a CSV file's rows as a
spreadsheet does, the header being line 1), or ``record 2`` for a JSON file.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from itagger_lib.codebook import resolve_codebook
from itagger_lib.db.models import Rating, Run, utcnow
from itagger_lib.errors import CodebookError, ImageNotFoundError, RatingError, remedy
from itagger_lib.images import ImageIndex
from itagger_lib.images import resolve as resolve_image
from itagger_lib.ratings.recording import SOURCES
from itagger_lib.runs import finish_run, record_failures, see_failures, start_run

if TYPE_CHECKING:
    from itagger_lib.codebook import CodebookRef
    from itagger_lib.context import Context

__all__ = ["ERRORS", "IF_IMPORTED", "ImportReport", "add_ratings"]

ERRORS = ("raise", "skip")
IF_IMPORTED = ("fail", "skip", "append")  # as pandas' to_sql(if_exists=...)
SHOWN = 10  # problems listed in an error message; the rest are counted
ROW_NAMES = ("line", "record", "row")  # index names a problem's place is given in


@dataclass(frozen=True)
class Problem:
    """One row of the table that cannot be imported, and why."""

    row: Any
    image: Any
    image_id: int | None
    reason: str
    row_name: str = "row"

    @property
    def where(self) -> str:
        return f"{self.row_name} {self.row}"

    def __str__(self) -> str:
        return f"{self.where} (image {self.image!r}): {self.reason}"


@dataclass(repr=False)
class ImportReport:
    """What :func:`add_ratings` did: rows stored, blanks and invalid rows skipped, the run."""

    run_id: int | None
    rows: int
    stored: int
    blank: int
    problems: list[Problem] = field(default_factory=list)
    duplicates: int = 0  # valid rows an earlier import had stored, skipped (if_imported="skip")
    already_imported: bool = False  # every valid row was stored before (by run ``run_id``, the last)

    @property
    def skipped(self) -> int:
        return self.blank + len(self.problems) + self.duplicates

    def __int__(self) -> int:
        return self.stored

    def __repr__(self) -> str:  # what a notebook shows: the summary, not every problem
        return f"<ImportReport {self}>"

    def __str__(self) -> str:
        if self.already_imported:
            return f"already imported as run {self.run_id}: nothing stored"
        text = f"import run {self.run_id}: {self.stored:,} of {self.rows:,} rows stored"
        if self.duplicates:
            text += f", {self.duplicates:,} already imported skipped"
        if self.blank:
            text += f", {self.blank:,} blank (unanswered) skipped"
        if self.problems:
            text += f", {len(self.problems):,} invalid skipped ({see_failures(self.run_id)})"
        return text


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and math.isnan(value)


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") and not isinstance(value, str | bytes) else value


def _rated_at(value: Any) -> datetime | None:
    """A time from the table as an aware UTC datetime (naive times are taken as UTC)."""
    stamp = pd.Timestamp(value)
    if stamp is pd.NaT:
        return None
    stamp = stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)
    return stamp.to_pydatetime()


def _rater_name(rater: str, source: str) -> str | None:
    """The one name of an imported rater: VLM raters carry ``vlm:`` (added where missing),
    and no one else may (``None``)."""
    if source == "vlm":
        return rater if rater.startswith("vlm:") else f"vlm:{rater}"
    return None if rater.startswith("vlm:") else rater


def add_ratings(
    ctx: Context,
    ratings: pd.DataFrame,
    codebook: CodebookRef = None,
    source: str = "import",
    mode: str = "blind",
    *,
    errors: str = "raise",
    if_imported: str = "fail",
    name: str | None = None,
) -> ImportReport:
    """Import a long table of ratings; return an :class:`ImportReport` (``int()`` of it is
    the number of rows stored).

    Columns: ``image`` (image id, 8+ hex digits of its SHA-256, or the file name it was
    ingested from) or ``image_id``, ``rater``, ``attribute``, ``value``; optional
    ``rated_at`` (naive times are UTC; default: now) and ``note``. Every row is validated
    against the codebook (``codebook``: as :func:`itagger_lib.codebook.resolve_codebook`
    takes it, default the newest) before anything is written.

    ``errors="raise"`` (default): if any row is invalid nothing is stored and
    :class:`RatingError` lists them (row, image, attribute, the allowed values).
    ``errors="skip"``: the valid rows are stored and each invalid one is recorded as a
    failure of the import run. Blank values are skipped and counted either way.
    ``if_imported``: what to do with rows an earlier import of the same ``source`` stored
    (same image, rater, attribute and answer, and ``rated_at`` where the table has it):
    ``"fail"`` (default; :class:`RatingError` naming those runs, nothing stored), ``"skip"``
    (store only the new rows: re-running a notebook, or importing a cumulative export, is
    then harmless) or ``"append"`` (store them again). ``name`` (a file name, say) is kept
    with the run. Raters are stored under the one name every table shows: with
    ``source="vlm"`` a rater gets the ``vlm:`` prefix where it lacks it; other sources may
    not use it.
    """
    if source not in SOURCES:
        raise RatingError(f"source {source!r} is not one of {SOURCES}")
    if errors not in ERRORS:
        raise RatingError(f"errors={errors!r}: use 'raise' (store nothing if a row is bad) or 'skip'")
    if if_imported not in IF_IMPORTED:
        raise RatingError(f"if_imported={if_imported!r}: use one of {IF_IMPORTED}")
    frame = pd.DataFrame(ratings)
    image_column = "image_id" if "image_id" in frame.columns else "image"
    missing = [c for c in (image_column, "rater", "attribute", "value") if c not in frame.columns]
    if missing:
        raise RatingError(
            f"ratings table lacks column(s) {missing}; give image (or image_id), rater, attribute, "
            f"value (its columns: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    book = resolve_codebook(ctx, codebook)
    images = ImageIndex.read(ctx.engine)
    has_time, has_note = "rated_at" in frame.columns, "note" in frame.columns
    now = utcnow()
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    blank = 0
    row_name = frame.index.name if frame.index.name in ROW_NAMES else "row"
    for position, record in zip(frame.index, frame.to_dict("records"), strict=True):
        ref = _scalar(record[image_column])

        def problem(reason: str, image_id: int | None = None) -> None:
            problems.append(Problem(position, ref, image_id, reason, row_name))  # noqa: B023

        value = _scalar(record["value"])
        if _missing(value):
            blank += 1
            continue
        if _missing(ref):
            problem("image is empty; give an image id, SHA-256 prefix or file name")
            continue
        try:
            image_id = resolve_image(images, ref, by_name=True)
        except ImageNotFoundError as exc:
            problem(str(exc))
            continue
        key = str(record["attribute"])
        try:
            attr = book.attribute(key)
        except (CodebookError, RatingError, KeyError):
            problem(
                f"attribute {key!r} is not in codebook {book.name} {book.version}; "
                f"known: {', '.join(book.keys)}",
                image_id,
            )
            continue
        try:
            number, text = attr.to_columns(value)
        except RatingError:
            shown = int(value) if isinstance(value, float) and value.is_integer() else value  # 9.0 → 9
            problem(f"attribute {key!r}: value {shown!r} is not allowed; give {attr.allowed()}", image_id)
            continue
        rater = _scalar(record["rater"])
        if _missing(rater) or not str(rater).strip():
            problem("rater is empty", image_id)
            continue
        rater = _rater_name(str(rater).strip(), source)
        if rater is None:
            problem(f"rater {str(record['rater']).strip()!r}: names starting with 'vlm:' are VLM raters; "
                    "import them with source='vlm'", image_id)  # fmt: skip
            continue
        rated_at = None
        if has_time and not _missing(_scalar(record["rated_at"])):
            try:
                rated_at = _rated_at(record["rated_at"])
            except (ValueError, TypeError):
                problem(
                    f"rated_at {record['rated_at']!r} is not a date and time; give ISO 8601 "
                    "such as 2026-03-01T14:30:00Z (naive times are UTC)",
                    image_id,
                )
                continue
        note = _scalar(record["note"]) if has_note else None
        rows.append(
            {
                "image_id": image_id,
                "attribute": attr.key,
                "codebook_id": book.id,
                "rater": rater,
                "source": source,
                "value": number,
                "value_text": text,
                "mode": mode,
                "note": None if _missing(note) else str(note),
                "rated_at": rated_at,
            }
        )
    if problems and errors == "raise":
        raise _invalid(
            problems,
            len(frame),
            ImageNotFoundError if all(p.image_id is None for p in problems) else RatingError,
        )
    parameters = {
        "codebook": {"id": book.id, "name": book.name, "version": book.version},
        "source": source,
        "mode": mode,
        "rows_sha256": _rows_hash(rows, has_time),
    }
    duplicates = 0
    if rows and if_imported != "append":
        matched, runs = _stored_before(ctx, rows, source, has_time)
        duplicates = sum(matched)
        if duplicates and if_imported == "fail":
            new = len(rows) - duplicates
            skip = f"to store only the {new:,} new rows" if new else "to store nothing"
            raise RatingError(
                f"{duplicates:,} of {len(rows):,} valid ratings rows were already imported "
                f"({_runs_text(ctx, runs)}); storing them again would count those answers twice. "
                + remedy(
                    f"Pass if_imported='skip' {skip}, or 'append' to store all of them again",
                    f"Give --if-imported skip {skip}, or --if-imported append to store all of them again",
                )
            )
        if duplicates == len(rows):
            return ImportReport(max(runs), len(frame), 0, blank, problems, duplicates, already_imported=True)
        rows = [row for row, seen in zip(rows, matched, strict=True) if not seen]
    run_id = start_run(
        ctx.engine,
        "import",
        {**parameters, "name": name},
        ctx.user,
        n_total=len(frame),
    )
    for row in rows:
        row["run_id"] = run_id
        row["rated_at"] = row["rated_at"] or now
    try:
        with ctx.engine.begin() as connection:
            for start in range(0, len(rows), 5000):
                connection.execute(sa.insert(Rating), rows[start : start + 5000])
            record_failures(
                connection,
                run_id,
                ((f"{p.where}: image {p.image!r}", p.image_id, p.reason) for p in problems),
            )
    except BaseException as exc:
        finish_run(ctx.engine, run_id, status="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finish_run(
        ctx.engine,
        run_id,
        n_done=len(rows),
        n_skipped=blank + duplicates,
        n_failed=len(problems),
        details={"stored": len(rows), "blank": blank, "invalid": len(problems), "duplicates": duplicates},
    )
    return ImportReport(run_id, len(frame), len(rows), blank, problems, duplicates)


def _invalid(problems: list[Problem], total: int, kind: type[Exception]) -> Exception:
    lines = [str(p) for p in problems[:SHOWN]]
    if len(problems) > SHOWN:
        lines.append(f"... and {len(problems) - SHOWN} more")
    return kind(
        f"{len(problems)} of {total} ratings rows cannot be imported; nothing was stored "
        "(fix them, or "
        + remedy("pass errors='skip'", "give --errors skip")
        + " to store the valid rows and record these as the import's failures):\n  "
        + "\n  ".join(lines)
    )


def _rows_hash(rows: list[dict[str, Any]], has_time: bool) -> str:
    """SHA-256 of the validated rows, order-independent (times only where the table gave them)."""
    keys = ["image_id", "attribute", "rater", "value", "value_text", "note"]
    if has_time:
        keys.append("rated_at")
    lines = sorted(json.dumps([row[k] for k in keys], default=str) for row in rows)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _key(row: Any, has_time: bool) -> tuple[Any, ...]:
    key = (int(row["image_id"]), row["attribute"], row["rater"], row["value"], row["value_text"])
    return (*key, _rated_at(row["rated_at"])) if has_time else key


def _stored_before(
    ctx: Context, rows: list[dict[str, Any]], source: str, has_time: bool
) -> tuple[list[bool], set[int]]:
    """Which rows an earlier finished import of ``source`` stored (each stored rating matches
    one row), and those imports' run ids."""
    imports = sa.select(Run.id).where(Run.kind == "import", Run.status.in_(("succeeded", "partial")))
    columns = (Rating.image_id, Rating.attribute, Rating.rater, Rating.value, Rating.value_text)
    raters = sorted({row["rater"] for row in rows})
    stored: Counter[tuple[Any, ...]] = Counter()
    run_of: dict[tuple[Any, ...], int] = {}
    with ctx.engine.connect() as connection:
        for start in range(0, len(raters), 500):
            query = sa.select(*columns, Rating.rated_at, Rating.run_id).where(
                Rating.source == source,
                Rating.run_id.in_(imports),
                Rating.rater.in_(raters[start : start + 500]),
            )
            for record in connection.execute(query).mappings():
                key = _key(record, has_time)
                stored[key] += 1
                run_of[key] = int(record["run_id"])
    matched, runs = [], set()
    for row in rows:
        key = _key(row, has_time)
        seen = stored[key] > 0
        if seen:
            stored[key] -= 1
            runs.add(run_of[key])
        matched.append(seen)
    return matched, runs


def _runs_text(ctx: Context, runs: set[int]) -> str:
    query = sa.select(Run.id, Run.started_at, Run.created_by).where(Run.id.in_(sorted(runs))).order_by(Run.id)
    with ctx.engine.connect() as connection:
        found = connection.execute(query).all()
    shown = [
        f"run {r.id} on {pd.Timestamp(r.started_at):%Y-%m-%d %H:%M} by {r.created_by}" for r in found[:5]
    ]
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return ", ".join(shown) + more
