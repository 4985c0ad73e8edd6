"""The science room: visual metrics of images, pure functions over RGB arrays.

``compute_metrics(rgb)`` gives every metric of one image as ``{dotted key: float}``; the
families (:mod:`.colour`, :mod:`.complexity`, :mod:`.fractal`, :mod:`.lines`,
:mod:`.colour_areas`, :mod:`.space`, :mod:`.symmetry`) share one :mod:`.working` image and its
planes (:mod:`.cielab` for lightness); :mod:`.composites` builds indices and bins. A lab's
own metrics (``rgb -> {key: float}``) join the suite through :mod:`.plugins`
(:func:`register_metric`, the ``@metric`` decorator, or the entry point group
``itagger.metrics``); renamed metrics and their old names are in :mod:`.names`. At the edges:
:mod:`.parallel` decodes files inside worker processes and maps the suite over many images,
:mod:`.pipeline` writes a science run to the database and :mod:`.results` reads results
back for everyone who shows or exports them. Definitions, parameters and tolerances:
``docs/metrics.md``.

The names below are imported on first use (as scikit-image's lazy ``__init__``), so a
reader of results (``science.results``, the export, the explorer) does not load OpenCV,
SciPy and every metric family.
"""

from __future__ import annotations

import typing

from itagger_lib import _lazy

if typing.TYPE_CHECKING:
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
    from itagger_lib.science.names import METRIC_ALIASES
    from itagger_lib.science.parallel import analyse_file, map_images
    from itagger_lib.science.plugins import metric, register_metric, registered_metrics, unregister_metric

_COMPOSITES = "itagger_lib.science.composites"
_METRICS = "itagger_lib.science.metrics"
_PLUGINS = "itagger_lib.science.plugins"
# Name → the module that defines it.
_LAZY = {
    "COMPOSITES": _COMPOSITES,
    "DEFAULT_PARAMS": _METRICS,
    "FAMILIES": _METRICS,
    "METRIC_ALIASES": "itagger_lib.science.names",
    "METRIC_VERSIONS": _METRICS,
    "analyse_file": "itagger_lib.science.parallel",
    "assign_bins": _COMPOSITES,
    "box_counting_dimension": _METRICS,
    "box_counting_fit": _METRICS,
    "compute_composites": _COMPOSITES,
    "compute_cut_points": _COMPOSITES,
    "compute_metrics": _METRICS,
    "family_costs": _METRICS,
    "map_images": "itagger_lib.science.parallel",
    "metric": _PLUGINS,
    "metric_keys": _METRICS,
    "params_hash": _METRICS,
    "register_metric": _PLUGINS,
    "registered_metrics": _PLUGINS,
    "resolve_params": _METRICS,
    "standardisation_stats": _COMPOSITES,
    "tertile_cut_points": _COMPOSITES,
    "unregister_metric": _PLUGINS,
}

__all__ = [
    "COMPOSITES",
    "DEFAULT_PARAMS",
    "FAMILIES",
    "METRIC_ALIASES",
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
    "metric",
    "metric_keys",
    "params_hash",
    "register_metric",
    "registered_metrics",
    "resolve_params",
    "standardisation_stats",
    "tertile_cut_points",
    "unregister_metric",
]


__getattr__, __dir__ = _lazy.attach(__name__, _LAZY, __all__, globals().keys)
