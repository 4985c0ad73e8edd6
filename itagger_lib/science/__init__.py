"""Visual metrics of images: pure functions over RGB arrays, composites and bins.

``compute_metrics(rgb)`` gives every metric of one image as ``{dotted key: float}``;
:mod:`~itagger_lib.science.parallel` decodes files inside worker processes and maps the
suite over many images; :mod:`~itagger_lib.science.composites` builds indices and bins.
Definitions, parameters and tolerances: ``docs/metrics.md``.
"""

from __future__ import annotations

from itagger_lib.science.composites import (
    COMPOSITES,
    assign_bins,
    compute_composites,
    compute_cut_points,
    standardisation_stats,
    tertile_cut_points,
)
from itagger_lib.science.metrics import (
    DEFAULT_PARAMS,
    FAMILIES,
    METRIC_VERSIONS,
    box_counting_dimension,
    box_counting_fit,
    compute_metrics,
    family_costs,
    metric_keys,
    params_hash,
    resolve_params,
)
from itagger_lib.science.parallel import analyse_file, map_images

__all__ = [
    "COMPOSITES",
    "DEFAULT_PARAMS",
    "FAMILIES",
    "METRIC_VERSIONS",
    "analyse_file",
    "assign_bins",
    "box_counting_dimension",
    "box_counting_fit",
    "compute_composites",
    "compute_cut_points",
    "compute_metrics",
    "family_costs",
    "map_images",
    "metric_keys",
    "params_hash",
    "resolve_params",
    "standardisation_stats",
    "tertile_cut_points",
]
