"""``itagger``: the command line, thin over the library.

Sub-commands live in :mod:`itagger_lib.commands`: every public module there defines
``register(subparsers)``, adding its commands with ``set_defaults(func=handler)`` where
``handler(args) -> int`` returns the exit status (``_tables`` prints their tables).

The command speaks shell: error messages name commands and options, not Python calls
(:func:`itagger_lib.errors.speak_shell`), and a reader that goes away (``itagger images |
head -5``) ends the command quietly with status 141, as ``seq 100 | head -1`` does.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from itagger_lib import commands
from itagger_lib._version import __version__
from itagger_lib.errors import ItaggerError, speak_shell

EXIT_USAGE = 2
EXIT_PIPE = 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader went away


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
        if module.name.startswith("_"):
            continue
        importlib.import_module(f"{commands.__name__}.{module.name}").register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    in_shell = speak_shell()
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except BrokenPipeError:
        # the rest of the output has nowhere to go; nothing must be written at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE
    except ItaggerError as exc:
        print(f"itagger {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"itagger {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        speak_shell(in_shell)  # main() called from Python (tests) leaves Python's words behind


if __name__ == "__main__":
    sys.exit(main())
