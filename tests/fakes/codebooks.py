"""Codebooks for tests and benchmarks that need a stored codebook, not a realistic one."""

from __future__ import annotations


def people_codebook(name: str = "test") -> str:
    """YAML of a one-question binary codebook (``people``: 0 No / 1 Yes, hotkeys 0 and 1)."""
    return f"""\
name: {name}
version: "1"
attributes:
  - key: people
    label: People
    question: Are people visible?
    type: binary
    levels:
      - {{value: 0, label: "No", hotkey: "0"}}
      - {{value: 1, label: "Yes", hotkey: "1"}}
"""
