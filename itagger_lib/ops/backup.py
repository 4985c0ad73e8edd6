"""Backup and verified restore of a workbench: the database, the store's files and a manifest.

A backup folder holds ``db.dump`` (``pg_dump -Fc``) or ``db.sqlite`` (SQLite backup API),
``store/<aa>/<bb>/<sha256>.<ext>`` and ``manifest.json``: the SHA-256 of every file in the
folder and the row count of every table.

:func:`restore` treats the folder as hostile until proven otherwise (docs/security.md):

1. the manifest must be an object of the shape :func:`backup` writes; every file name must be
   one :func:`backup` writes (the database file, ``store/ab/cd/<sha256>.<ext>`` whose name is
   the hash of its bytes, the hub database, ``homes/<volume>.tar``), relative, without ``..``;
2. every file is read without following links (a link, FIFO or device is refused), copied
   into a staging folder inside the store and hashed on the way: the staged bytes are the
   ones checked and the ones restored;
3. the staged database is read before it is restored: its row counts must be the
   manifest's, and every image row's file must be in the backup;
4. only then the staged files are renamed into the store and the database is swapped (on
   PostgreSQL in one transaction that first drops what the dump does not hold, such as a
   newer release's tables when rolling back).

Anything wrong raises :class:`OperationsError` with nothing touched.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import sqlalchemy as sa

from itagger_lib.context import Context
from itagger_lib.db.engine import redact_url
from itagger_lib.db.libpq import client_env, client_target, pg_bin
from itagger_lib.errors import OperationsError
from itagger_lib.store import sha256_file

MANIFEST = "manifest.json"
DB_FILES = {"postgresql": "db.dump", "sqlite": "db.sqlite"}
_STORE_ENTRY = re.compile(r"store/([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.([a-z0-9]{1,8})")
_OTHER_ENTRY = re.compile(r"db\.dump|db\.sqlite|hub/jupyterhub\.sqlite|homes/[A-Za-z0-9][A-Za-z0-9_.-]*\.tar")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 1 << 20

# Everything in schema ``public`` the restoring role may drop: tables (with their views,
# policies, owned sequences), then free-standing sequences, functions and types. A restore
# then leaves exactly the schema of the release that made the backup.
CLEAR_PUBLIC_SCHEMA = """
SET LOCAL client_min_messages = warning;
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT format('public.%I', c.relname) AS name, c.relkind FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
             AND pg_has_role(current_user, c.relowner, 'USAGE')
           ORDER BY c.relkind = 'S' LOOP
    EXECUTE format(
      'DROP %s IF EXISTS %s CASCADE',
      CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                     WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END,
      r.name);
  END LOOP;
  FOR r IN SELECT format('public.%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)) AS name
           FROM pg_proc p
           JOIN pg_namespace n ON n.oid = p.pronamespace
           WHERE n.nspname = 'public' AND p.prokind IN ('f', 'p')
             AND pg_has_role(current_user, p.proowner, 'USAGE')
             AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE format('DROP ROUTINE IF EXISTS %s CASCADE', r.name);
  END LOOP;
  FOR r IN SELECT format('public.%I', t.typname) AS name FROM pg_type t
           JOIN pg_namespace n ON n.oid = t.typnamespace
           LEFT JOIN pg_class c ON c.oid = t.typrelid
           WHERE n.nspname = 'public' AND (t.typtype IN ('e', 'd') OR c.relkind = 'c')
             AND pg_has_role(current_user, t.typowner, 'USAGE') LOOP
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', r.name);
  END LOOP;
END $$;
"""


def _pg_bin(name: str) -> str:
    path = pg_bin(name)
    if not path:
        raise OperationsError(f"{name} not found; install postgresql-client (same major as the server)")
    return path


def row_counts(engine: sa.Engine) -> dict[str, int]:
    """Rows in every table of the database behind ``engine``."""
    names = sorted(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        return {n: int(conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one()) for n in names}


def _run(cmd: list[str], what: str, url: sa.URL) -> None:
    # -w: never prompt; the password, if any, is in the child's environment, not in ``cmd``
    done = subprocess.run([cmd[0], "-w", *cmd[1:]], capture_output=True, text=True, env=client_env(url))
    if done.returncode != 0:
        raise OperationsError(f"{what} failed: {done.stderr.strip()[:500]}")


def backup(
    ws: Context,
    dest: str | Path,
    extras: Sequence[Callable[[Path], dict[str, Any]]] = (),
) -> dict[str, Any]:
    """Write a backup of ``ws`` into the new or empty folder ``dest``; return the manifest.

    Each of ``extras`` writes more files into ``dest`` (the hub's database, users' homes:
    :mod:`itagger_lib.ops.stack`) and returns entries for the manifest; their files are
    hashed into the manifest like the workbench's own.
    """
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise OperationsError(f"backup folder {dest} is not empty; choose a new folder")
    dest.mkdir(parents=True, exist_ok=True)
    engine = ws.engine
    if engine.dialect.name == "postgresql":
        _run(
            [_pg_bin("pg_dump"), "-Fc", "-f", str(dest / "db.dump"), "-d", client_target(engine.url)],
            f"pg_dump of {redact_url(engine.url)}",
            engine.url,
        )
    elif engine.dialect.name == "sqlite":
        target = sqlite3.connect(dest / "db.sqlite")
        source = sqlite3.connect(str(engine.url.database))
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
    else:
        raise OperationsError(f"cannot back up a {engine.dialect.name} database; use Postgres or SQLite")
    for sha, ext, path in ws.store.iter_files():
        out = dest / "store" / ws.store.relpath(sha, ext)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, out)
    parts: dict[str, Any] = {}
    for write in extras:
        parts.update(write(dest))
    files = {p.relative_to(dest).as_posix(): sha256_file(p) for p in sorted(dest.rglob("*")) if p.is_file()}
    manifest = {
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "dialect": engine.dialect.name,
        "files": files,
        "row_counts": row_counts(engine),
        "verified": True,
        **parts,
    }
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return manifest


# ---- reading a backup folder that may be hostile ---------------------------------------------
def _refuse(src: Path, what: str) -> OperationsError:
    return OperationsError(f"backup {src}: {what}; do not restore it (restore another backup)")


def _open_file(src: Path, name: str) -> int:
    """A read-only descriptor of the regular file ``src/name``; no link is followed at any level."""
    parts = PurePosixPath(name).parts
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(src, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise OperationsError(
            f"backup {src}: cannot open the folder ({exc.strerror}); give the folder that holds "
            "manifest.json (`ls` the backups folder for their names)"
        ) from exc
    try:
        for part in parts[:-1]:
            nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open(parts[-1], flags, dir_fd=fd)
    except OSError as exc:
        raise _refuse(src, f"{name} is missing, a link, or not readable ({exc.strerror})") from exc
    finally:
        os.close(fd)
    if not stat.S_ISREG(os.fstat(leaf).st_mode):
        os.close(leaf)
        raise _refuse(src, f"{name} is not a regular file")
    return leaf


def _chunks(src: Path, name: str) -> Iterator[bytes]:
    fd = _open_file(src, name)
    with os.fdopen(fd, "rb") as handle:
        while block := handle.read(_CHUNK):
            yield block


def _check_manifest(src: Path, manifest: object) -> dict[str, Any]:
    """``manifest`` if it has the shape :func:`backup` writes, else a clear refusal."""
    if not isinstance(manifest, dict):
        raise _refuse(src, f"{MANIFEST} is a {type(manifest).__name__}, not an object")
    files, counts, dialect = manifest.get("files"), manifest.get("row_counts"), manifest.get("dialect")
    if not isinstance(files, dict) or not isinstance(counts, dict):
        raise _refuse(src, f"{MANIFEST} lacks its 'files' or 'row_counts' object")
    if dialect not in DB_FILES:
        raise _refuse(src, f"{MANIFEST} names an unknown database kind {dialect!r}")
    if DB_FILES[dialect] not in files:
        raise _refuse(src, f"{MANIFEST} does not list the database file {DB_FILES[dialect]}")
    for table, n in counts.items():
        if not isinstance(table, str) or type(n) is not int or n < 0:
            raise _refuse(src, f"{MANIFEST} has an unusable row count {table!r}: {n!r}")
    for name, sha in files.items():
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise _refuse(src, f"{MANIFEST} has no SHA-256 for {name!r}")
        entry = _STORE_ENTRY.fullmatch(name)
        if entry:
            if entry[1] != entry[3][:2] or entry[2] != entry[3][2:4] or entry[3] != sha:
                raise _refuse(src, f"{name} is not named after the hash of its bytes")
        elif not _OTHER_ENTRY.fullmatch(name):
            raise _refuse(src, f"{name!r} is not a file a backup holds")
    homes = manifest.get("homes", [])
    if not isinstance(homes, list) or any(f"homes/{h}.tar" not in files for h in homes):
        raise _refuse(src, f"{MANIFEST} lists home volumes whose archives are not in the backup")
    return manifest


def _read_manifest(src: Path) -> dict[str, Any]:
    try:
        text = b"".join(_chunks(src, MANIFEST)).decode("utf-8")
        manifest = json.loads(text)
    except (OperationsError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise OperationsError(
            f"{src / MANIFEST} is missing or unreadable ({exc}); not a backup folder"
        ) from exc
    return _check_manifest(src, manifest)


def _hash_copy(src: Path, name: str, out: Path | None) -> str:
    digest = hashlib.sha256()
    handle = open(out, "xb") if out is not None else None  # noqa: SIM115 - closed below
    try:
        for block in _chunks(src, name):
            digest.update(block)
            if handle is not None:
                handle.write(block)
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if handle is not None:
            handle.close()
    return digest.hexdigest()


def verify(src: str | Path) -> dict[str, Any]:
    """Check the manifest's shape and every file of the backup folder ``src``; return the manifest."""
    src = Path(src)
    manifest = _read_manifest(src)
    bad = [name for name, sha in manifest["files"].items() if _hash_copy(src, name, None) != sha]
    if bad:
        raise _refuse(src, f"{len(bad)} file(s) missing or changed, e.g. {bad[0]}")
    return manifest


def _stage(src: Path, manifest: dict[str, Any], staging: Path) -> list[tuple[Path, str, str]]:
    """Copy the database file and every store file into ``staging``, hashing the copied bytes."""
    staged: list[tuple[Path, str, str]] = []
    bad: list[str] = []
    for i, (name, sha) in enumerate(sorted(manifest["files"].items())):
        entry = _STORE_ENTRY.fullmatch(name)
        keep = entry is not None or name == DB_FILES[manifest["dialect"]]
        out = (staging / (f"{i}.part" if entry else name)) if keep else None
        if _hash_copy(src, name, out) != sha:
            bad.append(name)
        elif entry:
            assert out is not None
            staged.append((out, entry[3], entry[4]))
    if bad:
        raise _refuse(src, f"{len(bad)} file(s) missing or changed, e.g. {bad[0]}")
    return staged


_COPY = re.compile(r'COPY (?:"?[^".\s]+"?\.)?"?([^"\s(]+)"? \(([^)]*)\) FROM stdin;')


def _dump_contents(dump: Path) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Row counts of a ``pg_dump -Fc`` file and its images' ``(sha256, ext)``, read without restoring."""
    proc = subprocess.Popen(
        [_pg_bin("pg_restore"), "--data-only", "-f", "-", str(dump)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        errors="replace",
    )
    assert proc.stdout is not None
    counts: dict[str, int] = {}
    images: set[tuple[str, str]] = set()
    table: str | None = None
    columns: list[str] = []
    for line in proc.stdout:
        if table is None:
            found = _COPY.match(line)
            if found:
                table, columns = found[1], [c.strip().strip('"') for c in found[2].split(",")]
                counts[table] = 0
        elif line == "\\.\n":
            table = None
        else:
            counts[table] += 1
            if table == "images":
                row = dict(zip(columns, line.rstrip("\n").split("\t"), strict=False))
                images.add((row.get("sha256", ""), row.get("ext", "")))
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise OperationsError(f"{dump} cannot be read by pg_restore: {err.strip()[:300]}")
    return counts, images


def _sqlite_contents(db: Path) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Row counts of a SQLite file and its images' ``(sha256, ext)``, opened read-only."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise OperationsError(f"{db}: the SQLite database is damaged")
        names = [
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        counts = {n: int(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in names}
        images: set[tuple[str, str]] = set()
        if "images" in names:
            images = {(str(s), str(e)) for s, e in conn.execute("SELECT sha256, ext FROM images")}
    except sqlite3.DatabaseError as exc:
        raise OperationsError(f"{db} is not a usable SQLite database ({exc})") from exc
    finally:
        conn.close()
    return counts, images


def _check_contents(src: Path, manifest: dict[str, Any], db: Path) -> None:
    """The staged database holds the manifest's row counts, and every image row's file."""
    if manifest["dialect"] == "postgresql":
        counts, images = _dump_contents(db)
    else:
        counts, images = _sqlite_contents(db)
    expected = manifest["row_counts"]
    diff = {
        t: (expected.get(t, 0), counts.get(t, 0))
        for t in set(counts) | set(expected)
        if counts.get(t, 0) != expected.get(t, 0)
    }
    if diff:
        raise _refuse(src, f"the database's row counts are not the manifest's (manifest, dump): {diff}")
    files = manifest["files"]
    missing = sorted(f"{s}.{e}" for s, e in images if f"store/{s[:2]}/{s[2:4]}/{s}.{e}" not in files)
    if missing:
        raise _refuse(src, f"{len(missing)} image(s) have no file in the backup, e.g. {missing[0]}")


def restore(ws: Context, src: str | Path) -> dict[str, Any]:
    """Restore the backup ``src`` into ``ws`` (its database and store), verified; return the manifest.

    Every check runs on staged copies before the store or the database is touched (the
    module's docstring lists them); a failed check raises :class:`OperationsError`.
    """
    src = Path(src).resolve()
    manifest = _read_manifest(src)
    engine = ws.engine
    if engine.dialect.name != manifest["dialect"]:
        raise OperationsError(
            f"backup {src} is of a {manifest['dialect']} database; "
            f"{redact_url(engine.url)} is {engine.dialect.name}"
        )
    ws.store.check_writable()
    staging = ws.store.root / ".tmp" / f"restore-{uuid.uuid4().hex}"
    staging.mkdir(parents=True)
    try:
        staged = _stage(src, manifest, staging)
        db = staging / DB_FILES[manifest["dialect"]]
        _check_contents(src, manifest, db)
        # verified: files first (a row never points at a missing file), then the database
        ws.store.commit(staged, replace=True)  # a damaged file in the store is repaired
        engine.dispose()
        if engine.dialect.name == "postgresql":
            scratch = Path(tempfile.mkdtemp(prefix="itagger-restore-"))  # mode 700: the script holds data
            script = scratch / "db.sql"
            try:
                _run(
                    [_pg_bin("pg_restore"), "--no-owner", "-f", str(script), str(db)],
                    "pg_restore",
                    engine.url,
                )
                # one transaction: drop what the dump does not hold (a newer release's tables
                # and functions, when rolling back), then the dump; on any error nothing changes
                _run(
                    [
                        _pg_bin("psql"),
                        "-X",
                        "-q",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "--single-transaction",
                        "-c",
                        CLEAR_PUBLIC_SCHEMA,
                        "-f",
                        str(script),
                        "-d",
                        client_target(engine.url),
                    ],
                    f"restore into {redact_url(engine.url)}",
                    engine.url,
                )
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        else:
            source = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            target = sqlite3.connect(str(engine.url.database))
            try:
                source.backup(target)
            finally:
                source.close()
                target.close()
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    counts = row_counts(engine)
    if counts != manifest["row_counts"]:
        raise OperationsError(
            f"restore of {src}: row counts differ after restore; run `itagger check` and restore again"
        )
    return manifest
