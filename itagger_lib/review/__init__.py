"""Review: inter-rater agreement, the VLM as a rater, and rater monitoring.

Pure functions over DataFrames live in :mod:`.coefficients` (one coefficient each),
:mod:`.agreement` (tables per attribute, VLM vs humans, test–retest, gold) and
:mod:`.monitor` (progress, dwell, flags). See ``docs/agreement.md``. The workspace entry
point is :func:`itagger_lib.review.agreement.agreement` (``ws.agreement()``); it is not
re-exported here so that ``itagger_lib.review.agreement`` stays the module.
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
