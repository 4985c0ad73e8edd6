"""Backup and verified restore of a workbench: the database, the store's files and a manifest.

A backup folder holds ``db.dump`` (``pg_dump -Fc``) or ``db.sqlite`` (SQLite backup API),
``store/<aa>/<bb>/<sha256>.<ext>`` and ``manifest.json``: the SHA-256 of every file in the
folder and the row count of every table. :func:`restore` refuses a folder whose files do not
match the manifest, and checks the row counts after restoring.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from itagger_lib.context import Context
from itagger_lib.db.engine import redact_url
from itagger_lib.db.libpq import client_env, client_target, pg_bin
from itagger_lib.errors import OperationsError
from itagger_lib.store import sha256_file

MANIFEST = "manifest.json"

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
  FOR r IN SELECT format('public.%I(%s)', p.proname, pg_get_function_identity_arguments(p.oid)) AS name FROM pg_proc p
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


def verify(src: str | Path) -> dict[str, Any]:
    """Check every file of the backup folder ``src`` against its manifest; return the manifest."""
    src = Path(src)
    try:
        manifest: dict[str, Any] = json.loads((src / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise OperationsError(
            f"{src / MANIFEST} is missing or unreadable ({exc}); not a backup folder"
        ) from exc
    bad = [
        name
        for name, sha in manifest["files"].items()
        if not (src / name).is_file() or sha256_file(src / name) != sha
    ]
    if bad:
        raise OperationsError(
            f"backup {src}: {len(bad)} file(s) missing or changed, e.g. {bad[0]}; do not restore it"
        )
    return manifest


def restore(ws: Context, src: str | Path) -> dict[str, Any]:
    """Restore the backup ``src`` into ``ws`` (its database and store), verified; return the manifest."""
    src = Path(src)
    manifest = verify(src)
    engine = ws.engine
    if engine.dialect.name != manifest["dialect"]:
        raise OperationsError(
            f"backup {src} is of a {manifest['dialect']} database; "
            f"{redact_url(engine.url)} is {engine.dialect.name}"
        )
    if engine.dialect.name == "postgresql":
        engine.dispose()
        scratch = Path(tempfile.mkdtemp(prefix="itagger-restore-"))  # mode 700: the script holds data
        script = scratch / "db.sql"
        try:
            _run([_pg_bin("pg_restore"), "--no-owner", "-f", str(script), str(src / "db.dump")], "pg_restore", engine.url)
            # one transaction: drop what the dump does not hold (a newer release's tables and
            # functions, when rolling back), then the dump; on any error nothing changes
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
        engine.dispose()
        source = sqlite3.connect(src / "db.sqlite")
        target = sqlite3.connect(str(engine.url.database))
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
    for name in manifest["files"]:
        if name.startswith("store/"):
            out = ws.store.root / name[len("store/") :]
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, out)
    counts = row_counts(engine)
    if counts != manifest["row_counts"]:
        diff = {
            t: (manifest["row_counts"].get(t), counts.get(t))
            for t in set(counts) | set(manifest["row_counts"])
            if counts.get(t) != manifest["row_counts"].get(t)
        }
        raise OperationsError(f"restore of {src}: row counts differ after restore (expected, found): {diff}")
    return manifest
