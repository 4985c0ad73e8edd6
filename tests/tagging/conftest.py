"""Fixtures for the tagging tests: a small codebook and an ingested workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

SMALL_CODEBOOK = """\
name: tagtest
version: "1"
attributes:
  - key: test_binary
    label: People
    question: Are people visible?
    type: binary
    levels:
      - {value: 0, label: "No", hotkey: "0"}
      - {value: 1, label: "Yes", hotkey: "1"}
  - key: calm
    label: Calm
    question: How calm is this scene?
    type: ordinal
    points: 5
    anchors: {1: Not at all, 5: Very}
  - key: setting
    label: Setting
    question: Which setting?
    type: categorical
    levels:
      - {value: interior, label: Interior, hotkey: "1"}
      - {value: exterior, label: Exterior, hotkey: "2"}
"""


@pytest.fixture
def tagged_ws(workspace: Any, sample_dir: Path) -> Any:
    """The ``workspace`` with the 12 sample images ingested and the small codebook stored."""
    workspace.ingest(sample_dir, progress=False)
    workspace.load_codebook(SMALL_CODEBOOK)
    return workspace
