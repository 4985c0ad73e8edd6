"""``itagger tag``: the tagging app on this machine (Voilà serving the app notebook)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from itagger_lib.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tag",
        help="open the tagging app in the browser: one question per screen, keys only",
        description="Serve the tagging app (Voilà, no code shown) on 127.0.0.1 and open it in "
        "the browser. Answers are saved as they are given; stop with Ctrl-C. The rater is "
        "--rater, else ITAGGER_USER, else your login name.",
    )
    p.add_argument("--study", help="study name or id (default: the newest study)")
    p.add_argument("--rater", help="whose ratings these are (default: ITAGGER_USER or your login name)")
    p.add_argument("--port", type=int, default=8866, help="port on 127.0.0.1 (default 8866)")
    p.add_argument("--no-browser", action="store_true", help="print the address; open no browser")
    p.set_defaults(func=cmd_tag)


def app_environment(args: argparse.Namespace) -> dict[str, str]:
    """The environment of the app's kernels: the workspace, the rater and the study."""
    env = dict(os.environ)
    for option, variable in (
        ("database_url", "ITAGGER_DATABASE_URL"),
        ("store", "ITAGGER_STORE"),
        ("home", "ITAGGER_HOME"),
    ):
        value = getattr(args, option, None)
        if value:
            env[variable] = str(Path(value).resolve()) if option != "database_url" else value
    if args.rater:
        env["ITAGGER_USER"] = args.rater
    if args.study:
        env["ITAGGER_TAG_STUDY"] = str(args.study)
    return env


def cmd_tag(args: argparse.Namespace) -> int:
    from itagger_lib.widgets.tagging_app import APP_NOTEBOOK, app_notebook

    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    try:
        import voila  # noqa: F401
    except ImportError:
        raise ConfigError(
            "the tagging app needs Voilà: pip install 'voila>=0.5' (it comes with image-tagger)"
        ) from None
    with tempfile.TemporaryDirectory(prefix="itagger-tag-") as folder:
        notebook = Path(folder) / APP_NOTEBOOK
        notebook.write_text(json.dumps(app_notebook(), indent=1), encoding="utf-8")
        command = [
            sys.executable,
            "-m",
            "voila",
            str(notebook),
            f"--port={args.port}",
            "--Voila.ip=127.0.0.1",
            "--Voila.port_retries=0",
        ]
        if args.no_browser:
            command.append("--no-browser")
        print(f"tagging app: http://127.0.0.1:{args.port}/  (Ctrl-C stops it)", flush=True)
        try:
            return subprocess.call(command, env=app_environment(args), cwd=folder)
        except KeyboardInterrupt:
            return 0
