"""``itagger batch NOTEBOOK -p NAME VALUE ... [-y YAML] [-f FILE]``: a recorded papermill run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from itagger_lib.commands import open_workspace
from itagger_lib.errors import BatchError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch",
        help="run a parameterised notebook with papermill and record it as a run",
        description="Run NOTEBOOK (a path, or a batch notebook name such as demo, science, "
        "export) against this workspace; the executed notebook is written under "
        "ITAGGER_HOME/runs/<run id>/.",
    )
    p.add_argument("notebook", metavar="NOTEBOOK", help="path to an .ipynb, or a batch notebook name")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="set a parameter; VALUE is read as YAML (3, 0.5, true, text)",
    )
    p.add_argument(
        "-y",
        "--parameters-yaml",
        action="append",
        default=[],
        metavar="YAML",
        help="parameters as a YAML mapping, e.g. '{n_images: 3}'",
    )
    p.add_argument(
        "-f",
        "--parameters-file",
        action="append",
        default=[],
        metavar="FILE",
        help="parameters from a YAML file",
    )
    p.add_argument(
        "--output-dir", help="folder for the executed notebook (default ITAGGER_HOME/runs/<run id>)"
    )
    p.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's)")
    p.add_argument("--log-output", action="store_true", help="echo the cells' output to stderr")
    p.set_defaults(func=cmd_batch)


def _yaml_mapping(text: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BatchError(f"{where} is not valid YAML: {exc}") from exc
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BatchError(f"{where} must be a YAML mapping of name: value, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def collect_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """Parameters from ``-f`` files, then ``-y`` mappings, then ``-p`` pairs (later wins)."""
    import yaml

    parameters: dict[str, Any] = {}
    for name in args.parameters_file:
        try:
            text = Path(name).read_text(encoding="utf-8")
        except OSError as exc:
            raise BatchError(f"cannot read parameters file {name}: {exc.strerror}") from exc
        parameters.update(_yaml_mapping(text, f"parameters file {name}"))
    for text in args.parameters_yaml:
        parameters.update(_yaml_mapping(text, f"-y {text!r}"))
    for name, raw in args.parameter:
        try:
            parameters[name] = yaml.safe_load(raw)
        except yaml.YAMLError:
            parameters[name] = raw
    return parameters


def cmd_batch(args: argparse.Namespace) -> int:
    from itagger_lib.batch import run_batch

    parameters = collect_parameters(args)
    ws = open_workspace(args)
    result = run_batch(
        ws,
        args.notebook,
        parameters,
        output_dir=args.output_dir,
        kernel_name=args.kernel,
        log_output=args.log_output,
    )
    if result.ok:
        print(result)
        return 0
    print(f"itagger batch: error: {result}", file=sys.stderr)
    return 1
