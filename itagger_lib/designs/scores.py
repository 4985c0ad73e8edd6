"""The result of a score fit: scores on the logit scale, standard errors, intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

from itagger_lib.errors import ScienceError

__all__ = ["DEFAULT_PRIOR_SD", "ScoreFit", "ridge"]

DEFAULT_PRIOR_SD = 3.0
"""Standard deviation (logits) of the Gaussian prior on each score: weak next to the spread
of perceived qualities in image sets (about 1 logit), strong enough to keep an item that
always wins finite."""


@dataclass(frozen=True)
class ScoreFit:
    """Scores of items on the logit scale with their standard errors.

    ``scores`` sum to zero; ``standard_errors`` are those of the centred scores.
    ``judgements`` counts the judgements (or trials) each item took part in; ``components``
    is the number of connected parts of the comparison graph (scores in different parts are
    related only through the prior). ``se_method`` is ``"exact"`` or
    ``"belief-propagation"``.
    """

    scores: np.ndarray
    standard_errors: np.ndarray
    judgements: np.ndarray
    components: int
    prior_sd: float | None
    iterations: int
    se_method: str

    def intervals(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Wald intervals ``score ± z·se`` at the two-sided ``level`` (0 < level < 1)."""
        if not 0 < level < 1:
            raise ScienceError(f"level must be between 0 and 1, not {level}")
        z = float(norm.ppf(0.5 + level / 2))
        return self.scores - z * self.standard_errors, self.scores + z * self.standard_errors


def ridge(prior_sd: float | None) -> float:
    """``1 / prior_sd²``, the prior precision (0 for ``None``: maximum likelihood)."""
    if prior_sd is None:
        return 0.0
    if not prior_sd > 0 or not np.isfinite(prior_sd):
        raise ScienceError(f"prior_sd must be a positive number or None, not {prior_sd}")
    return 1.0 / prior_sd**2
