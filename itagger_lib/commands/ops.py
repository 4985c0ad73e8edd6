"""``itagger backup``, ``itagger restore`` and ``itagger doctor``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from itagger_lib.commands import open_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("backup", help="dump the database and the store into DEST with a manifest")
    p.add_argument("dest", help="new, empty backup folder")
    p.set_defaults(func=cmd_backup)
    p = subparsers.add_parser("restore", help="restore a verified backup folder into the workspace")
    p.add_argument("src", help="backup folder written by `itagger backup`")
    p.set_defaults(func=cmd_restore)
    p = subparsers.add_parser("doctor", help="check the deployment security checklist")
    p.add_argument("--env", type=Path, help="the stack's .env file (default: deploy/.env)")
    p.add_argument("--url", help="public https URL of the hub, to check TLS and the http redirect")
    p.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    p.add_argument("--backups", type=Path, help="folder holding backups (default: $ITAGGER_BACKUPS)")
    p.add_argument("--ca", help="CA bundle for --url (e.g. a lab's self-signed certificate)")
    p.set_defaults(func=cmd_doctor)
    p = subparsers.add_parser("secure-db", help="apply group roles, grants and row-level security (Postgres)")
    p.set_defaults(func=cmd_secure_db)


def cmd_backup(args: argparse.Namespace) -> int:
    from itagger_lib.ops.backup import backup

    ws = open_workspace(args)
    try:
        manifest = backup(ws, args.dest)
    finally:
        ws.close()
    print(f"backup {args.dest}: {len(manifest['files'])} files, {sum(manifest['row_counts'].values())} rows")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from itagger_lib.ops.backup import restore

    ws = open_workspace(args)
    try:
        manifest = restore(ws, args.src)
    finally:
        ws.close()
    print(f"restored {args.src}: files and row counts verified ({sum(manifest['row_counts'].values())} rows)")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import itagger_lib
    from itagger_lib.ops.doctor import format_report, run_checks
    from itagger_lib.ops.hubconfig import parse_env_file

    root = args.root.resolve()
    env_file = args.env or root / "deploy" / ".env"
    env = parse_env_file(env_file.read_text()) if env_file.is_file() else {}
    backups = args.backups or (
        Path(os.environ["ITAGGER_BACKUPS"]) if os.environ.get("ITAGGER_BACKUPS") else None
    )
    checks = run_checks(
        root, env, itagger_lib.__version__, url=args.url, backups=backups, verify_tls=args.ca or True
    )
    print(f"env file: {env_file}{'' if env_file.is_file() else ' (missing)'}")
    print(format_report(checks))
    return 0 if all(c.passed for c in checks) else 1


def cmd_secure_db(args: argparse.Namespace) -> int:
    from itagger_lib.ops.security import apply_row_level_security

    ws = open_workspace(args)
    try:
        apply_row_level_security(ws.engine)
    finally:
        ws.close()
    print("roles itagger_tagger/itagger_researcher/itagger_admin, grants and ratings policies applied")
    return 0
