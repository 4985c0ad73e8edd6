"""Files and folders → the image store + database rows, with a report.

Files are probed (header and structure, no full decode) and hashed in a thread pool; each
new file is written into the store before its row is inserted, so a killed ingest leaves
at most a stored file without a row (the next run adds the row) or a temp file (the next
run removes it) — never a row without its file.
"""

from __future__ import annotations

import glob
import html
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib.comparisons.phashes import file_phash
from itagger_lib.db.dml import insert_ignore
from itagger_lib.db.models import Image, ImageSource, utcnow
from itagger_lib.errors import ImageError, ItaggerError, StoreError, UnreadableFileError, remedy
from itagger_lib.imaging import IMAGE_SUFFIXES, UNSUPPORTED_IMAGE_SUFFIXES, ImageInfo, probe
from itagger_lib.runs import finish_run, record_failures, see_failures, start_run, update_run
from itagger_lib.store import ImageStore, sha256_file

if TYPE_CHECKING:
    import pandas as pd

    from itagger_lib._types import StrPath
    from itagger_lib.context import Context

BATCH_ROWS = 256


@dataclass
class IngestReport:
    """What an ingest did: images added, already present, failed (with reasons)."""

    run_id: int | None
    added: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0
    status: str = "running"

    @property
    def processed(self) -> int:
        return len(self.added) + len(self.present)

    @property
    def failures(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.failed, columns=["input", "reason"])

    def summary(self) -> str:
        return (
            f"ingest run {self.run_id}: {len(self.added)} added, {len(self.present)} already "
            f"present, {len(self.failed)} failed, {len(self.ignored)} ignored (not images) "
            f"in {self.seconds:.1f} s"
        )

    def __str__(self) -> str:
        lines = [self.summary()]
        for item, reason in self.failed[:50]:
            lines.append(f"  FAILED {item}: {reason}")
        if len(self.failed) > 50:
            lines.append(f"  ... and {len(self.failed) - 50} more ({see_failures(self.run_id)})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td><code>{html.escape(item)}</code></td><td>{html.escape(reason)}</td></tr>"
            for item, reason in self.failed[:200]
        )
        table = (
            f"<table><thead><tr><th>input</th><th>reason</th></tr></thead><tbody>{rows}</tbody></table>"
            if rows
            else ""
        )
        return f"<p><b>{html.escape(self.summary())}</b></p>{table}"


@dataclass(frozen=True)
class _Candidate:
    path: Path
    shown: str


@dataclass(frozen=True)
class _Prepared:
    candidate: _Candidate
    info: ImageInfo | None = None
    sha256: str | None = None
    size: int = 0
    staged: Path | None = None
    error: str | None = None
    phash: int | None = None


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def expand_paths(
    paths: Iterable[StrPath] | StrPath, recursive: bool = True
) -> tuple[list[_Candidate], list[tuple[str, str]], list[str]]:
    """Inputs → candidate files, immediate failures, and ignored non-image files."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    candidates: list[_Candidate] = []
    failures: list[tuple[str, str]] = []
    ignored: list[str] = []
    seen_dirs: set[str] = set()

    def walk(folder: Path) -> None:
        real = os.path.realpath(folder)
        if real in seen_dirs:
            failures.append((str(folder), "symlink loop (folder already visited); fix the link"))
            return
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            failures.append((str(folder), f"folder cannot be read ({exc.strerror}); check permissions"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                is_dir = False
            if is_dir:
                if recursive:
                    walk(path)
                continue
            suffix = path.suffix.lower()
            if suffix in IMAGE_SUFFIXES or suffix in UNSUPPORTED_IMAGE_SUFFIXES:
                candidates.append(_Candidate(path, str(path)))
            elif entry.is_symlink() and not path.exists():
                failures.append((str(path), f"broken symlink to {os.readlink(path)!r}; fix or remove it"))
            else:
                ignored.append(str(path))

    for raw in paths:
        text = os.fspath(raw)
        path = Path(text).expanduser()
        if not path.exists() and not path.is_symlink() and _has_glob(text):
            matches = sorted(glob.glob(os.path.expanduser(text), recursive=recursive))
            if not matches:
                failures.append((text, "no file matches this pattern; check the pattern and folder"))
            for match in matches:
                mpath = Path(match)
                if mpath.is_dir():
                    if recursive:
                        walk(mpath)
                    else:
                        failures.append(
                            (
                                match,
                                "is a folder matched by a file pattern; "
                                + remedy("pass recursive=True", "leave out --no-recursive")
                                + " or give a pattern that matches files",
                            )
                        )
                else:
                    candidates.append(_Candidate(mpath, match))
            continue
        if path.is_dir():
            walk(path)
        elif path.exists() or path.is_symlink():
            candidates.append(_Candidate(path, text))
        else:
            failures.append((text, "no such file or folder; check the path"))
    return candidates, failures, ignored


def _prepare(candidate: _Candidate, store: ImageStore, max_megapixels: float) -> _Prepared:
    """Probe, hash and store one file (runs in a worker thread)."""
    try:
        info = probe(candidate.path, max_megapixels)
        sha = sha256_file(candidate.path)
        size = candidate.path.stat().st_size
        staged = store.stage(candidate.path, sha, info.ext)
        return _Prepared(candidate, info, sha, size, staged, phash=_phash_or_none(candidate.path))
    except ImageError as exc:
        return _Prepared(candidate, error=exc.reason)
    except ItaggerError as exc:
        return _Prepared(candidate, error=str(exc))
    except OSError as exc:
        return _Prepared(
            candidate,
            error=str(UnreadableFileError(candidate.path, exc.strerror or str(exc)).reason),
        )


def _phash_or_none(path: Path) -> int | None:
    """The stored form of the file's pHash, or ``None`` when it cannot be decoded (the image is
    still ingested; ``itagger images phash`` reports it)."""
    try:
        return file_phash(path)
    except ImageError:
        return None


def _bounded_map(
    pool: ThreadPoolExecutor, fn: Any, items: list[_Candidate], in_flight: int
) -> Iterator[_Prepared]:
    """Like ``pool.map`` in input order, but with at most ``in_flight`` pending futures."""
    pending: list[Future[_Prepared]] = []
    index = 0
    while index < len(items) or pending:
        while index < len(items) and len(pending) < in_flight:
            pending.append(pool.submit(fn, items[index]))
            index += 1
        yield pending.pop(0).result()


def _write_batch(
    connection: sa.Connection,
    batch: list[_Prepared],
    user: str,
    collection: str | None,
    report: IngestReport,
) -> None:
    now = utcnow()
    image_rows: dict[str, dict[str, Any]] = {}
    for item in batch:
        assert item.info is not None and item.sha256 is not None
        image_rows.setdefault(
            item.sha256,
            {
                "sha256": item.sha256,
                "ext": item.info.ext,
                "format": item.info.format,
                "width": item.info.width,
                "height": item.info.height,
                "bytes": item.size,
                "source_name": item.candidate.path.name,
                "source_path": str(item.candidate.path.absolute()),
                "collection": collection,
                "ingested_at": now,
                "ingested_by": user,
                "phash": item.phash,
            },
        )
    inserted = set(insert_ignore(connection, Image, list(image_rows.values()), Image.sha256))
    ids = dict(
        connection.execute(sa.select(Image.sha256, Image.id).where(Image.sha256.in_(list(image_rows)))).all()
    )
    source_rows = [
        {
            "image_id": ids[item.sha256],
            "source_name": item.candidate.path.name,
            "source_path": str(item.candidate.path.absolute()),
            "ingested_at": now,
            "ingested_by": user,
        }
        for item in batch
        if item.sha256 is not None
    ]
    # Same bytes under another name: one image, one more recorded source.
    insert_ignore(connection, ImageSource, source_rows)
    for item in batch:
        if item.sha256 in inserted:
            inserted.discard(item.sha256)
            report.added.append(item.candidate.shown)
        else:
            report.present.append(item.candidate.shown)


def ingest(
    ctx: Context,
    paths: Iterable[StrPath] | StrPath,
    recursive: bool = True,
    *,
    collection: str | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> IngestReport:
    """Add image files and folders to the workspace; see :meth:`~itagger_lib.workspace.Workspace.ingest`."""
    from tqdm.auto import tqdm

    ctx.store.check_writable()  # before anything is written: a tagger's store is read-only
    started = time.perf_counter()
    ctx.store.check_writable()  # before the run row: a store that cannot be written leaves no run
    try:
        ctx.store.root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"the image store at {ctx.store.root} cannot be created ({exc.strerror}); check ITAGGER_STORE"
        ) from exc
    ctx.store.clean_temp()
    candidates, early_failures, ignored = expand_paths(paths, recursive)
    path_list = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    run_id = start_run(
        ctx.engine,
        "ingest",
        {"paths": path_list, "recursive": recursive, "collection": collection},
        ctx.user,
        n_total=len(candidates) + len(early_failures),
    )
    report = IngestReport(run_id=run_id, ignored=ignored)
    report.failed.extend(early_failures)
    workers = workers or min(8, (os.cpu_count() or 1) * 2)
    batch: list[_Prepared] = []
    failures: list[tuple[str, int | None, str]] = [(item, None, reason) for item, reason in early_failures]

    def flush() -> None:
        # Files first (synced and renamed), rows second: a row never lacks its file.
        ctx.store.commit(
            [
                (item.staged, item.sha256, item.info.ext)
                for item in batch
                if item.staged is not None and item.sha256 and item.info
            ]
        )
        with ctx.engine.begin() as connection:
            if batch:
                _write_batch(connection, batch, ctx.user, collection, report)
            record_failures(connection, run_id, failures)
            update_run(
                connection,
                run_id,
                n_done=len(report.added),
                n_skipped=len(report.present),
                n_failed=len(report.failed),
            )
        batch.clear()
        failures.clear()

    bar = tqdm(total=len(candidates), desc="ingest", unit="img", disable=not progress)
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            prepare = lambda c: _prepare(c, ctx.store, ctx.settings.max_megapixels)  # noqa: E731
            for item in _bounded_map(pool, prepare, candidates, 2 * BATCH_ROWS):
                if item.error is not None:
                    report.failed.append((item.candidate.shown, item.error))
                    failures.append((item.candidate.shown, None, item.error))
                else:
                    batch.append(item)
                if len(batch) >= BATCH_ROWS or len(failures) >= BATCH_ROWS:
                    flush()
                bar.update(1)
        flush()
    except BaseException as exc:
        bar.close()
        report.status = finish_run(
            ctx.engine,
            run_id,
            status="interrupted",
            error=f"{type(exc).__name__}: {exc}",
            n_done=len(report.added),
            n_skipped=len(report.present),
            n_failed=len(report.failed),
        )
        raise
    bar.close()
    report.seconds = time.perf_counter() - started
    report.status = finish_run(
        ctx.engine,
        run_id,
        status=("failed" if not report.processed else "partial") if report.failed else "succeeded",
        n_done=len(report.added),
        n_skipped=len(report.present),
        n_failed=len(report.failed),
        details={"ignored": len(ignored), "seconds": round(report.seconds, 3)},
    )
    return report
