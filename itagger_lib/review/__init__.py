"""The review room: inter-rater agreement, the VLM as a rater, rater monitoring, adjudication.

Pure functions over DataFrames live in :mod:`.coefficients` (one coefficient each),
:mod:`.disagreement` (per unit, for ordering adjudication), :mod:`.agreement` (tables per
attribute, VLM vs humans, test–retest, gold) and :mod:`.monitor` (progress, dwell, flags).
:mod:`.reading` reads a workspace's ratings and codebook levels for them (``ws.agreement()``)
and :mod:`.adjudication` keeps the queue of contested images and the consensus values. See
``docs/agreement.md``. Ratings themselves (studies, the queue, recording, imports) are the
ratings room, :mod:`itagger_lib.ratings`.
"""

from __future__ import annotations

from itagger_lib.review.agreement import (
    agreement_table,
    gold_accuracy,
    test_retest,
    vlm_vs_human,
)
from itagger_lib.review.monitor import rater_flags, rater_progress

__all__ = [
    "agreement_table",
    "gold_accuracy",
    "rater_flags",
    "rater_progress",
    "test_retest",
    "vlm_vs_human",
]
