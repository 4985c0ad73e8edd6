"""Sub-commands of ``itagger``; each module defines ``register(subparsers)``."""

from __future__ import annotations

import argparse

from itagger_lib.workspace import Workspace


def open_workspace(args: argparse.Namespace) -> Workspace:
    """The workspace named by the global ``--database-url/--store/--home`` options."""
    return Workspace(
        database_url=getattr(args, "database_url", None),
        store=getattr(args, "store", None),
        home=getattr(args, "home", None),
    )
