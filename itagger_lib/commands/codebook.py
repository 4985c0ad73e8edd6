"""``itagger codebook load FILE`` and ``itagger codebook show``."""

from __future__ import annotations

import argparse

import yaml

from itagger_lib.commands import open_workspace


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("codebook", help="load and show attribute codebooks")
    sub = p.add_subparsers(dest="codebook_command", required=True)
    load = sub.add_parser("load", help="store a codebook YAML file (a new version, never an edit)")
    load.add_argument("file", nargs="?", help="YAML file (default: the shipped architecture codebook)")
    load.set_defaults(func=cmd_load)
    show = sub.add_parser("show", help="print a stored codebook as YAML, or list them")
    show.add_argument("--name", help="codebook name (default: the newest)")
    show.add_argument("--version", dest="codebook_version", help="codebook version")
    show.add_argument("--list", action="store_true", help="list stored codebooks")
    show.set_defaults(func=cmd_show)


def cmd_load(args: argparse.Namespace) -> int:
    codebook = open_workspace(args).load_codebook(args.file)
    print(
        f"codebook {codebook.name!r} version {codebook.version!r} stored as id {codebook.id} "
        f"({len(codebook.attributes)} attributes, hash {codebook.content_hash[:12]})"
    )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from itagger_lib.codebook import list_codebooks

    ws = open_workspace(args)
    if args.list:
        for row in list_codebooks(ws):
            print(
                f"{row['id']}\t{row['name']}\t{row['version']}\t{row['content_hash'][:12]}\t{row['created_by']}"
            )
        return 0
    codebook = ws.codebook(args.name, args.codebook_version)
    print(f"# id {codebook.id}, hash {codebook.content_hash}")
    print(yaml.safe_dump(codebook.to_dict(), sort_keys=False, allow_unicode=True), end="")
    return 0
