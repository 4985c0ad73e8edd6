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


def screen_codebook(name: str = "screen") -> str:
    """YAML of three questions as a real study asks them: a 7-point scale with anchors, four
    categories with long labels and definitions, and a yes/no question."""
    return f"""\
name: {name}
version: "1"
attributes:
  - key: coherence
    label: Coherence
    question: How well do the parts of this scene fit together into an organised whole?
    type: ordinal
    definition: The scene hangs together; repeated elements, clear regions and a unifying theme.
    points: 7
    anchors:
      1: "Chaotic, parts do not fit"
      4: Moderately coherent
      7: "Highly coherent, clearly organised"
  - key: setting
    label: Setting
    question: Which kind of setting does the image mainly show?
    type: categorical
    levels:
      - {{value: interior, label: Interior of a building, hotkey: "1", definition: Inside a building}}
      - {{value: urban, label: "Urban exterior: streets, squares, facades", hotkey: "2"}}
      - {{value: natural, label: Natural exterior with little building, hotkey: "3"}}
      - {{value: mixed, label: Mixed – no single setting dominates, hotkey: "4"}}
  - key: people
    label: People
    question: Are any people visible in the image?
    type: binary
    levels:
      - {{value: 0, label: "No", hotkey: "0"}}
      - {{value: 1, label: "Yes", hotkey: "1"}}
"""
