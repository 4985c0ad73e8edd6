"""Metric names that changed, and reading results stored under the old ones.

A metric is renamed when its name claimed more than it measures (``nature.sky_share``
counted blue or grey pixels joined to the top edge, whatever they were). The values did not
change, so results stored under an old key are the new metric's: the readers
(:mod:`itagger_lib.science.results`, the explorer's queries) show them under the new name,
and every function that takes a metric name accepts the old one too. Pure, with no import
of the metric families, so readers stay light.

=================================  =======================================
old key (until 0.2)                new key
=================================  =======================================
``nature.greenery_share``          ``colour_areas.green_share``
``nature.sky_share``               ``colour_areas.top_blue_grey_share``
``composite.naturalness``          ``composite.green_blue_oblique``
=================================  =======================================

The family ``nature`` is ``colour_areas`` (``families=["nature"]`` still selects it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeVar

__all__ = ["FAMILY_ALIASES", "METRIC_ALIASES", "canonical", "canonical_keys", "stored_key"]

#: Old metric key → the key it is read under now.
METRIC_ALIASES: dict[str, str] = {
    "nature.greenery_share": "colour_areas.green_share",
    "nature.sky_share": "colour_areas.top_blue_grey_share",
    "composite.naturalness": "composite.green_blue_oblique",
}
#: Old family name → the family now.
FAMILY_ALIASES: dict[str, str] = {"nature": "colour_areas"}

V = TypeVar("V")


def canonical(key: str) -> str:
    """The current name of a metric key (or of ``bin.<key>``); other names unchanged."""
    if key.startswith("bin."):
        return "bin." + canonical(key[4:])
    return METRIC_ALIASES.get(key, key)


def canonical_keys(mapping: Mapping[str, V]) -> dict[str, V]:
    """``mapping`` with its keys under their current names."""
    return {canonical(key): value for key, value in mapping.items()}


def stored_key(key: str, stored: Iterable[str]) -> str:
    """The name ``key`` (old or new) is stored under in a result set whose keys are ``stored``
    (a run's cut points, say): the old name for results written before the rename."""
    names = set(stored)
    current = canonical(key)
    if current in names:
        return current
    for old, new in METRIC_ALIASES.items():
        if new == current and old in names:
            return old
    return current
