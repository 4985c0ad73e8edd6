"""``itagger ingest | check | images | status | db | sample``."""

from __future__ import annotations

import argparse
import json
import sys

from itagger_lib.commands import open_workspace
from itagger_lib.commands._tables import add_format_option, print_table
from itagger_lib.errors import ArgumentError

#: what ``itagger images`` shows in text; csv and json give every column
IMAGE_COLUMNS = ["source_name", "format", "width", "height", "bytes", "collection", "ingested_at"]


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("ingest", help="add image files and folders to the workspace")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or glob patterns")
    p.add_argument(
        "--no-recursive",
        dest="recursive",
        action="store_false",
        help="do not descend into sub-folders",
    )
    p.add_argument("--collection", help="label the new images with a collection name")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any file failed")
    p.add_argument("--workers", type=int, help="hashing threads (default: 2 × cores, at most 8)")
    p.set_defaults(func=cmd_ingest)

    p = subparsers.add_parser("check", help="check that every image has its file and every file its row")
    p.add_argument("--no-rehash", dest="rehash", action="store_false", help="skip re-hashing file contents")
    p.set_defaults(func=cmd_check)

    p = subparsers.add_parser("status", help="workspace counts, schema revision and version")
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser(
        "images",
        help="list images: id, file name, format, size, collection",
        description="List the workspace's images, one per line: id and the file name they were "
        "ingested from first, format, size and collection. --format csv or json gives every "
        "column (SHA-256, source path, who ingested it). `itagger images phash` computes the "
        "perceptual hash of every image that has none (images ingested before hashes were "
        "stored) and reports those whose file cannot be read.",
    )
    p.add_argument(
        "action",
        nargs="?",
        choices=("phash",),
        help="phash: compute the missing perceptual hashes (near-duplicate control)",
    )
    add_format_option(p)
    p.set_defaults(func=cmd_images)

    p = subparsers.add_parser("db", help="database schema migrations")
    db = p.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db.add_parser("upgrade", help="apply pending migrations (back up first)").set_defaults(
        func=cmd_db_upgrade
    )
    db.add_parser("current", help="print the schema revision and the package's head").set_defaults(
        func=cmd_db_current
    )

    p = subparsers.add_parser("sample", help="write the generated sample images to a folder")
    p.add_argument("dest", help="folder to write into")
    p.add_argument("-n", type=int, default=12, help="number of images (default 12)")
    p.set_defaults(func=cmd_sample)


def cmd_ingest(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ArgumentError(f"--workers must be at least 1, got {args.workers}")
    ws = open_workspace(args)
    report = ws.ingest(
        args.paths,
        recursive=args.recursive,
        collection=args.collection,
        progress=sys.stderr.isatty(),
        workers=args.workers,
    )
    print(report)
    if report.failed and args.strict:
        return 1
    if report.failed and not report.processed:
        return 1
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    report = open_workspace(args).check(rehash=args.rehash)
    print(report)
    return 0 if report.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    print(json.dumps(open_workspace(args).status(), indent=2, default=str))
    return 0


def cmd_images(args: argparse.Namespace) -> int:
    if args.action == "phash":
        from itagger_lib.comparisons.phashes import fill_phashes

        report = fill_phashes(open_workspace(args))
        print(report)
        return 1 if report.failed and not report.computed else 0
    images = open_workspace(args).images()
    if args.table_format == "text":
        images = images[IMAGE_COLUMNS].rename(columns={"source_name": "file"})
    print_table(
        images,
        args.table_format,
        index=True,
        empty="no images yet: add some with `itagger ingest FOLDER` (or `itagger sample DIR` first)",
    )
    return 0


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from itagger_lib.config import Settings
    from itagger_lib.db import make_engine

    settings = Settings.from_env(home=args.home, database_url=args.database_url, store=args.store)
    return make_engine(settings.database_url)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from itagger_lib.db import current_revision, head_revision, upgrade
    from itagger_lib.ops.security import apply_row_level_security, is_secured

    engine = _engine(args)
    before = current_revision(engine)
    upgrade(engine)
    print(f"schema: {before or 'empty'} -> {current_revision(engine)} (head {head_revision()})")
    if is_secured(engine):
        # a migration may add tables: the group roles' grants and policies must cover them
        apply_row_level_security(engine)
        print("row-level security and group grants re-applied (as `itagger secure-db` does)")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from itagger_lib.db import current_revision, head_revision
    from itagger_lib.db.migrate import check_known

    engine = _engine(args)
    current = current_revision(engine)
    check_known(engine, current)
    head = head_revision()
    state = "up to date" if current == head else "behind: run `itagger db upgrade`"
    print(f"current: {current or 'empty'}\nhead:    {head}\n{state}")
    return 0 if current == head else 1


def cmd_sample(args: argparse.Namespace) -> int:
    from itagger_lib.samples import write_samples

    paths = write_samples(args.dest, n=args.n)
    print(f"wrote {len(paths)} sample images to {args.dest}")
    return 0
