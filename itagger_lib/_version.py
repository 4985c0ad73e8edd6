"""The package version, read from the repository's ``VERSION`` file (its single source)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def _read_version() -> str:
    # A source checkout (editable install, tests) reads VERSION itself so that a bump
    # needs no reinstall; an installed wheel carries the same value in its metadata.
    source = Path(__file__).resolve().parent.parent / "VERSION"
    if source.is_file():
        return source.read_text(encoding="utf-8").strip()
    return metadata.version("image-tagger")


__version__ = _read_version()
