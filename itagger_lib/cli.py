"""``itagger``: the command line, thin over the library.

Sub-commands live in :mod:`itagger_lib.commands`: every module there defines
``register(subparsers)``, adding its commands with ``set_defaults(func=handler)`` where
``handler(args) -> int`` returns the exit status.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

from itagger_lib import commands
from itagger_lib._version import __version__
from itagger_lib.errors import ItaggerError

EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itagger",
        description="Image Tagger: images, visual metrics, human and VLM ratings, agreement.",
    )
    parser.add_argument("--version", action="version", version=f"itagger {__version__}")
    parser.add_argument("--database-url", help="override ITAGGER_DATABASE_URL")
    parser.add_argument("--store", help="override ITAGGER_STORE")
    parser.add_argument("--home", help="override ITAGGER_HOME")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except ItaggerError as exc:
        print(f"itagger {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"itagger {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
