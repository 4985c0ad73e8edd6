"""The metric suite: parameters, the family registry, and :func:`compute_metrics`.

>>> import numpy as np
>>> from itagger_lib.science import compute_metrics
>>> values = compute_metrics(np.full((48, 64, 3), 128, np.uint8))
>>> values["colour.colourfulness"], values["meta.working_width"]
(0.0, 64.0)
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from itagger_lib.errors import ScienceError
from itagger_lib.imaging import ALPHA_BACKGROUND
from itagger_lib.science import colour, colour_areas, complexity, fractal, lines, space, symmetry
from itagger_lib.science.fractal import box_counting_dimension, box_counting_fit
from itagger_lib.science.names import FAMILY_ALIASES
from itagger_lib.science.plugins import load_metric, registered_metrics
from itagger_lib.science.working import WorkingImage, to_working_resolution

__all__ = [
    "DEFAULT_PARAMS",
    "FAMILIES",
    "METRIC_VERSIONS",
    "Family",
    "box_counting_dimension",
    "box_counting_fit",
    "compute_metrics",
    "family_costs",
    "metric_keys",
    "params_hash",
    "resolve_params",
]


@dataclass(frozen=True)
class Family:
    """A metric family: its keys, the version of its definitions, and its compute function."""

    name: str
    version: str
    keys: tuple[str, ...]
    compute: Callable[[WorkingImage], dict[str, float]]


def _meta(image: WorkingImage) -> dict[str, float]:
    return {"meta.working_width": float(image.width), "meta.working_height": float(image.height)}


# The order is the order of metric_keys(); ``meta`` is always computed.
FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("colour", colour.VERSION, colour.KEYS, colour.compute),
        Family("complexity", complexity.VERSION, complexity.KEYS, complexity.compute),
        Family("fractal", fractal.VERSION, fractal.KEYS, fractal.compute),
        Family("symmetry", symmetry.VERSION, symmetry.KEYS, symmetry.compute),
        Family("lines", lines.VERSION, lines.KEYS, lines.compute),
        Family("colour_areas", colour_areas.VERSION, colour_areas.KEYS, colour_areas.compute),
        Family("space", space.VERSION, space.KEYS, space.compute),
        Family("meta", "2", ("meta.working_width", "meta.working_height"), _meta),
    )
}
METRIC_VERSIONS: dict[str, str] = {name: family.version for name, family in FAMILIES.items()}

DEFAULT_PARAMS: dict[str, Any] = {
    "families": list(FAMILIES),
    "working_long_side": 1024,
    "canny_sigma": 1.0,
    "canny_low": 40.0,
    "canny_high": 100.0,
    "chromatic_min_saturation": 0.15,
    "chromatic_min_value": 0.15,
    "hue_bins": 36,
    "jpeg_quality": 75,
    "spectral_min_cycles": 4.0,
    "spectral_max_frequency": 0.25,
    "glcm_levels": 32,
    "glcm_distance": 1,
    "fractal_min_box": 4,
    "fractal_max_box_divisor": 8,
    "symmetry_long_side": 128,
    "line_tolerance_deg": 15.0,
    "orientation_bins": 36,
    "greenery_hue_range": [65.0, 170.0],
    "greenery_min_saturation": 0.2,
    "greenery_min_value": 0.12,
    "sky_hue_range": [180.0, 260.0],
    "sky_min_saturation": 0.08,
    "sky_min_value": 0.45,
    "sky_grey_max_saturation": 0.1,
    "sky_grey_min_value": 0.75,
    "clutter_grid": 8,
    "openness_central_fraction": 0.5,
    "openness_radius": 0.1,
}
# Parameters that choose what is computed, not how: they do not enter params_hash as such
# (a lab's metrics enter it by name, keys and version, not by where their code lives).
_SELECTION_KEYS = frozenset({"families", "plugins"})
# (low, high) inclusive bounds for numeric parameters; None means unbounded.
_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    "working_long_side": (16, None),
    "canny_sigma": (0, 20),
    "canny_low": (0, None),
    "canny_high": (0, None),
    "chromatic_min_saturation": (0, 1),
    "chromatic_min_value": (0, 1),
    "hue_bins": (2, 360),
    "jpeg_quality": (1, 100),
    "spectral_min_cycles": (1, None),
    "spectral_max_frequency": (0.01, 0.5),
    "glcm_levels": (2, 256),
    "glcm_distance": (1, 64),
    "fractal_min_box": (1, 1024),
    "fractal_max_box_divisor": (1, 1024),
    "symmetry_long_side": (4, None),
    "line_tolerance_deg": (0, 45),
    "orientation_bins": (2, 360),
    "greenery_min_saturation": (0, 1),
    "greenery_min_value": (0, 1),
    "sky_min_saturation": (0, 1),
    "sky_min_value": (0, 1),
    "sky_grey_max_saturation": (0, 1),
    "sky_grey_min_value": (0, 1),
    "clutter_grid": (1, 256),
    "openness_central_fraction": (0.01, 1),
    "openness_radius": (0.001, 1),
}
_INTEGER_KEYS = frozenset(
    {
        "working_long_side",
        "hue_bins",
        "jpeg_quality",
        "glcm_levels",
        "glcm_distance",
        "fractal_min_box",
        "fractal_max_box_divisor",
        "symmetry_long_side",
        "orientation_bins",
        "clutter_grid",
    }
)
_RANGE_KEYS = frozenset({"greenery_hue_range", "sky_hue_range"})


def _number(key: str, value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ScienceError(f"science parameter {key!r} must be a number, got {value!r}")
    if key in _INTEGER_KEYS:
        if float(value) != int(value):
            raise ScienceError(f"science parameter {key!r} must be a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if not np.isfinite(value):
        raise ScienceError(f"science parameter {key!r} must be finite, got {value!r}")
    low, high = _BOUNDS.get(key, (None, None))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScienceError(
            f"science parameter {key!r} = {value!r} is outside its range "
            f"[{low if low is not None else '-inf'}, {high if high is not None else 'inf'}]"
        )
    return value


def _families(value: Any, known: Iterable[str]) -> list[str]:
    """The families named by ``value`` (old names allowed), built-in ones in suite order."""
    names = [value] if isinstance(value, str) else list(value)
    names = [FAMILY_ALIASES.get(name, name) for name in names]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ScienceError(
            f"unknown metric family {unknown[0]!r} in science parameter 'families'; "
            f"choose from {', '.join(known)}"
        )
    return [name for name in FAMILIES if name in names] + list(
        dict.fromkeys(n for n in names if n not in FAMILIES)
    )


def resolve_params(params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The defaults updated with ``params``, validated.

    ``families`` defaults to every built-in family and every registered metric
    (:mod:`~itagger_lib.science.plugins`); the resolved ``plugins`` holds what a worker
    process needs to run the registered metrics selected (their import path, version, keys).

    Raises
    ------
    ScienceError
        For an unknown key (named, with the known keys listed), a value of the wrong type or
        outside its range, or an unknown family.
    """
    params = dict(params or {})
    given: dict[str, Any] = dict(params.pop("plugins", None) or {})
    registered = registered_metrics()
    known = [*FAMILIES, *sorted(set(registered) | set(given))]
    resolved = {
        key: (list(value) if isinstance(value, list) else value) for key, value in DEFAULT_PARAMS.items()
    }
    resolved["families"] = _families(known, known)
    for key, value in params.items():
        if key not in DEFAULT_PARAMS:
            raise ScienceError(
                f"unknown science parameter {key!r}; known parameters: {', '.join(sorted(DEFAULT_PARAMS))}"
            )
        if key == "families":
            resolved[key] = _families(value, known)
        elif key in _RANGE_KEYS:
            pair = list(value) if isinstance(value, list | tuple) else None
            if pair is None or len(pair) != 2:
                raise ScienceError(f"science parameter {key!r} must be [low, high], got {value!r}")
            low, high = (_number(key, v) for v in pair)
            if not 0 <= low < high <= 360:
                raise ScienceError(
                    f"science parameter {key!r} must satisfy 0 <= low < high <= 360 (degrees), got {value!r}"
                )
            resolved[key] = [low, high]
        else:
            resolved[key] = _number(key, value)
    if resolved["canny_low"] > resolved["canny_high"]:
        raise ScienceError(
            f"science parameter 'canny_low' ({resolved['canny_low']}) must not exceed "
            f"'canny_high' ({resolved['canny_high']})"
        )
    resolved["plugins"] = {
        name: dict(given.get(name) or registered[name].spec())
        for name in resolved["families"]
        if name not in FAMILIES
    }
    return resolved


def params_hash(params: Mapping[str, Any] | None = None) -> str:
    """SHA-256 (hex) identifying the values a parameter set produces.

    The hash covers the resolved parameters (except ``families``, which selects what is
    computed but does not change any value), :data:`METRIC_VERSIONS`, the background transparent
    images are composited onto (:data:`itagger_lib.imaging.ALPHA_BACKGROUND`), and, when a lab's
    metrics are selected, their names, keys and versions, serialised as canonical JSON
    (sorted keys, no spaces). Two parameter sets with the same hash give the same value for
    every metric key.
    """
    resolved = resolve_params(params)
    payload: dict[str, Any] = {
        "params": {k: v for k, v in resolved.items() if k not in _SELECTION_KEYS},
        "versions": METRIC_VERSIONS,
        # how pixels are read: transparent images are composited onto this background
        "decoding": {"alpha_background": list(ALPHA_BACKGROUND)},
    }
    if resolved["plugins"]:
        payload["metrics"] = {
            name: {"version": spec["version"], "keys": spec["keys"]}
            for name, spec in resolved["plugins"].items()
        }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def metric_keys(params: Mapping[str, Any] | None = None) -> list[str]:
    """The dotted metric keys :func:`compute_metrics` returns for these parameters, in order."""
    resolved = resolve_params(params)
    families = resolved["families"]
    built_in = [
        key for name, family in FAMILIES.items() if name in families or name == "meta" for key in family.keys
    ]
    return built_in + [f"{name}.{key}" for name, spec in resolved["plugins"].items() for key in spec["keys"]]


def _validate(rgb: Any) -> np.ndarray:
    if not isinstance(rgb, np.ndarray):
        raise ScienceError(f"compute_metrics needs a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ScienceError(
            f"compute_metrics needs an RGB image of shape (height, width, 3), got shape "
            f"{rgb.shape}; convert grey or RGBA images to RGB first"
        )
    if rgb.dtype != np.uint8:
        raise ScienceError(
            f"compute_metrics needs a uint8 image (0-255), got dtype {rgb.dtype}; "
            "scale and convert it, e.g. (img * 255).round().astype(np.uint8)"
        )
    if min(rgb.shape[:2]) < 8:
        raise ScienceError(
            f"compute_metrics needs an image of at least 8 x 8 pixels, got {rgb.shape[1]} x {rgb.shape[0]}"
        )
    return np.ascontiguousarray(rgb)


def compute_metrics(rgb: np.ndarray, params: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Every selected metric of an RGB image at the working resolution.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        sRGB image, EXIF orientation already applied.
    params : mapping, optional
        Overrides of :data:`DEFAULT_PARAMS` (see :func:`resolve_params`).

    Returns
    -------
    dict
        ``{dotted key: float}`` in the order of :func:`metric_keys`. Pure and deterministic:
        the same pixels and parameters give bit-identical values in any process.

    Raises
    ------
    ScienceError
        If ``rgb`` is not an ``uint8`` array of shape (H, W, 3) of at least 8 x 8 pixels, or
        ``params`` is invalid.
    """
    resolved = resolve_params(params)
    rgb = _validate(rgb)
    image = WorkingImage(to_working_resolution(rgb, resolved["working_long_side"]), resolved)
    values: dict[str, float] = {}
    for name, family in FAMILIES.items():
        if name in resolved["families"] or name == "meta":
            values.update({key: float(value) for key, value in family.compute(image).items()})
    for name, spec in resolved["plugins"].items():
        values.update(load_metric(name, spec).compute(_read_only(image.rgb)))
    return values


def _read_only(rgb: np.ndarray) -> np.ndarray:
    """A view of the working image a lab's metric cannot write into (the families share it)."""
    view = rgb.view()
    view.flags.writeable = False
    return view


def family_costs(
    rgb: np.ndarray, repeats: int = 5, params: Mapping[str, Any] | None = None
) -> dict[str, float]:
    """Median wall time in milliseconds of each family on ``rgb``, and of the whole suite.

    Each family is timed on a fresh :class:`WorkingImage`, so its cost includes the shared
    planes it needs (grey, CIELAB, edges, …); ``"resize"`` is the working-resolution resize
    and ``"total"`` one full :func:`compute_metrics` call, in which planes are shared.
    Run it with ``cv2.setNumThreads(1)`` for single-core figures.
    """
    resolved = resolve_params(params)
    rgb = _validate(rgb)
    samples: dict[str, list[float]] = {"resize": []}
    samples.update({name: [] for name in resolved["families"] if name != "meta"})
    samples["total"] = []
    for _ in range(max(1, repeats)):
        start = time.perf_counter()
        working = to_working_resolution(rgb, resolved["working_long_side"])
        samples["resize"].append(time.perf_counter() - start)
        for name in resolved["families"]:
            if name == "meta":
                continue
            start = time.perf_counter()
            if name in FAMILIES:
                FAMILIES[name].compute(WorkingImage(working, resolved))
            else:
                load_metric(name, resolved["plugins"][name]).compute(working)
            samples[name].append(time.perf_counter() - start)
        start = time.perf_counter()
        compute_metrics(rgb, resolved)
        samples["total"].append(time.perf_counter() - start)
    return {name: float(np.median(times)) * 1000.0 for name, times in samples.items()}
