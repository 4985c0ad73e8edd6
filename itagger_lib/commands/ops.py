"""``itagger backup``, ``itagger restore`` and ``itagger doctor``."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from itagger_lib.commands import open_workspace
from itagger_lib.errors import ArgumentError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from itagger_lib.config import Settings
    from itagger_lib.store import ImageStore


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "backup",
        help="dump the database and the store into DEST with a manifest",
        description="Back up the workbench database and store (and, where ITAGGER_HUB_DB and "
        "ITAGGER_HOME_VOLUMES are set, as in the compose stack's backup service, the hub's "
        "database and the users' home volumes) into a new folder with a verified manifest.",
    )
    p.add_argument("dest", nargs="?", help="new, empty backup folder (with --schedule: the parent folder)")
    p.add_argument("--schedule", metavar="HH:MM", help="run for ever: one backup a day at this UTC time")
    p.add_argument("--keep", type=int, default=14, help="with --schedule: scheduled backups to keep (14)")
    p.add_argument(
        "--check-schedule",
        action="store_true",
        help="exit 1 unless the schedule runs and its last backup worked",
    )
    p.set_defaults(func=cmd_backup)
    p = subparsers.add_parser("restore", help="restore a verified backup folder into the workspace")
    p.add_argument("src", help="backup folder written by `itagger backup`")
    p.set_defaults(func=cmd_restore)
    p = subparsers.add_parser("doctor", help="check the deployment security checklist")
    p.add_argument("--env", type=Path, help="the stack's .env file (default: deploy/.env)")
    p.add_argument("--url", help="public https URL of the hub, to check TLS and the http redirect")
    p.add_argument(
        "--root", type=Path, help="repository root (default: the checkout around the current folder)"
    )
    p.add_argument("--backups", type=Path, help="folder holding backups (default: $ITAGGER_BACKUPS)")
    p.add_argument("--ca", help="CA bundle for --url (e.g. a lab's self-signed certificate)")
    p.set_defaults(func=cmd_doctor)
    p = subparsers.add_parser("secure-db", help="apply group roles, grants and row-level security (Postgres)")
    p.set_defaults(func=cmd_secure_db)


def cmd_backup(args: argparse.Namespace) -> int:
    from itagger_lib.ops import stack

    if args.check_schedule:
        problem = stack.schedule_health()
        print(problem or "backup schedule running; last backup fine")
        return 1 if problem else 0
    if not args.dest:
        raise ArgumentError("itagger backup needs a folder: itagger backup /backups/$(date +%F)")
    if args.schedule:
        at = stack.parse_time_of_day(args.schedule)
        stack.run_schedule(Path(args.dest), at, args.keep, lambda dest: _backup_once(args, dest))
        return 0
    manifest = _backup_once(args, Path(args.dest))
    extra = "".join(
        f", {label}"
        for key, label in (("hub_db", "hub database"), ("homes", "home volumes"))
        if key in manifest
    )
    print(
        f"backup {args.dest}: {len(manifest['files'])} files, "
        f"{sum(manifest['row_counts'].values())} rows{extra}"
    )
    return 0


def _backup_once(args: argparse.Namespace, dest: Path) -> dict[str, Any]:
    from itagger_lib.ops.backup import backup
    from itagger_lib.ops.stack import StackParts

    parts = StackParts.from_env()
    ws = open_workspace(args)
    try:
        return backup(ws, dest, extras=parts.writers())
    finally:
        ws.close()


@dataclass(frozen=True)
class _RestoreTarget:
    """The database and store a restore writes into (a :class:`~itagger_lib.context.Context`)."""

    engine: Engine
    store: ImageStore
    user: str
    settings: Settings

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _RestoreTarget:
        from itagger_lib.config import Settings
        from itagger_lib.db.engine import make_engine
        from itagger_lib.store import ImageStore

        settings = Settings.from_env(
            home=getattr(args, "home", None),
            database_url=getattr(args, "database_url", None),
            store=getattr(args, "store", None),
        )
        return cls(make_engine(settings.database_url), ImageStore(settings.store), settings.user, settings)


def cmd_restore(args: argparse.Namespace) -> int:
    from itagger_lib.ops.backup import restore, verify
    from itagger_lib.ops.stack import StackParts, check_home_archives, restore_home_volumes, restore_hub_db

    parts = StackParts.from_env()
    src = Path(args.src)
    manifest = verify(src)  # every file, before anything is touched
    if manifest.get("homes") and parts.home_image:
        check_home_archives(src, manifest["homes"])
    # not a Workspace: the database may be empty, broken, or at a newer release's revision
    # (rolling back an upgrade), which opening a workspace refuses
    ws = _RestoreTarget.from_args(args)
    try:
        manifest = restore(ws, src)
    finally:
        ws.engine.dispose()
    done = [f"{sum(manifest['row_counts'].values())} rows"]
    if manifest.get("hub_db") and parts.hub_db is not None:
        restore_hub_db(src, parts.hub_db)
        done.append("hub database")
    if manifest.get("homes") and parts.home_image:
        restore_home_volumes(src, manifest["homes"], parts.home_image)
        done.append(f"{len(manifest['homes'])} home volumes")
    print(f"restored {args.src}: files and row counts verified ({', '.join(done)})")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import itagger_lib
    from itagger_lib.ops.doctor import find_root, format_report, run_checks
    from itagger_lib.ops.hubconfig import parse_env_file

    root = (args.root or find_root(Path.cwd())).resolve()
    env_file = args.env or root / "deploy" / ".env"
    env = parse_env_file(env_file.read_text()) if env_file.is_file() else {}
    backups = args.backups or (
        Path(os.environ["ITAGGER_BACKUPS"]) if os.environ.get("ITAGGER_BACKUPS") else None
    )
    checks = run_checks(
        root,
        env,
        itagger_lib.__version__,
        url=args.url,
        backups=backups,
        verify_tls=args.ca or True,
        env_file=env_file,
    )
    print(f"env file: {env_file}{'' if env_file.is_file() else ' (missing)'}")
    print(format_report(checks))
    return 0 if all(c.passed or c.skipped for c in checks) else 1


def cmd_secure_db(args: argparse.Namespace) -> int:
    from itagger_lib.ops.security import apply_row_level_security

    ws = open_workspace(args)
    try:
        apply_row_level_security(ws.engine)
    finally:
        ws.close()
    print("roles itagger_tagger/itagger_researcher/itagger_admin, grants and ratings policies applied")
    return 0
