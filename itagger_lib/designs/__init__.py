"""Comparative study designs: pairwise comparisons, best–worst scaling, near-duplicates.

Pure functions over arrays of item numbers (``0 … n-1``); the study, its raters and its
images live in the database and are mapped to these numbers by the caller.

* schedules: :func:`rater_pairs`, :func:`pair_schedule`, :func:`adaptive_pairs`,
  :func:`best_worst_design`;
* scores: :func:`bradley_terry` (with :func:`bootstrap_scores`), :func:`best_worst_counts`,
  :func:`best_worst_mnl`, all but counts as a :class:`ScoreFit` with standard errors;
* reliability: :func:`pairwise_split_half`, :func:`best_worst_split_half`,
  :func:`circular_triads`;
* near-duplicates: :func:`phash` (with :func:`read_grey_reduced`), :func:`near_duplicate_groups`,
  :func:`group_split`.

Formulas, choices and references: ``docs/designs.md``.
"""

from __future__ import annotations

from itagger_lib.designs.best_worst import (
    BestWorstCounts,
    best_worst_counts,
    best_worst_design,
    best_worst_mnl,
)
from itagger_lib.designs.bradley_terry import bootstrap_scores, bradley_terry
from itagger_lib.designs.decode import read_grey_reduced
from itagger_lib.designs.near_duplicates import (
    DEFAULT_THRESHOLD,
    hamming,
    near_duplicate_groups,
    near_duplicate_pairs,
    phash,
)
from itagger_lib.designs.pairs import (
    adaptive_pairs,
    information_gain,
    pair_schedule,
    pairs_per_rater,
    rater_pairs,
)
from itagger_lib.designs.reliability import (
    SplitHalf,
    Triads,
    best_worst_split_half,
    circular_triads,
    pairwise_split_half,
    spearman_brown,
    split_half,
)
from itagger_lib.designs.scores import DEFAULT_PRIOR_SD, ScoreFit
from itagger_lib.designs.splits import group_split

__all__ = [
    "DEFAULT_PRIOR_SD",
    "DEFAULT_THRESHOLD",
    "BestWorstCounts",
    "ScoreFit",
    "SplitHalf",
    "Triads",
    "adaptive_pairs",
    "best_worst_counts",
    "best_worst_design",
    "best_worst_mnl",
    "best_worst_split_half",
    "bootstrap_scores",
    "bradley_terry",
    "circular_triads",
    "group_split",
    "hamming",
    "information_gain",
    "near_duplicate_groups",
    "near_duplicate_pairs",
    "pair_schedule",
    "pairs_per_rater",
    "pairwise_split_half",
    "phash",
    "rater_pairs",
    "read_grey_reduced",
    "spearman_brown",
    "split_half",
]
