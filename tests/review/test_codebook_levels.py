"""Levels of measurement and domains come out right from a stored codebook definition."""

from __future__ import annotations

from itagger_lib.codebook import default_codebook
from itagger_lib.review.agreement import codebook_levels


def test_levels_from_the_default_codebook() -> None:
    levels, domains = codebook_levels(default_codebook().to_dict())
    assert levels["coherence"] == "ordinal" and domains["coherence"] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    assert levels["people_present"] == "nominal" and domains["people_present"] == [0.0, 1.0]
    assert levels["setting"] == "nominal" and domains["setting"] == [0.0, 1.0, 2.0, 3.0]
