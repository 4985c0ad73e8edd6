"""A lab's own metrics: a function of an RGB image, registered by name, run like a family.

A lab with a segmentation model of its own can add real sky and vegetation shares beside the
colour heuristics. A metric is a function ``rgb -> {key: float}`` (the working image,
``uint8`` of shape (H, W, 3), as every family gets it) with the keys it returns and a
version; its values are stored as ``<name>.<key>`` with the same provenance as the built-in
metrics (the run, the parameters hash, which covers the metric's name, keys and version, and
its version on every value). Register it in one of two ways:

* in code, before the run: ``register_metric("lab_seg", lab_seg, keys=("sky_share",),
  version="1")``, or the decorator ``@metric("lab_seg", keys=("sky_share",))``;
* as a package, with an entry point in the group ``itagger.metrics`` whose name is the
  metric's and whose object is the decorated function
  (``[project.entry-points."itagger.metrics"] lab_seg = "labpkg.metrics:lab_seg"``): found
  in every process, with nothing to call.

Images are analysed in worker processes, which find a metric by the import path of its
function (``module:name``, recorded with the run): the function must live in a module they
can import, not in a notebook cell or a lambda. A registered metric is part of every run
(``families`` defaults to the built-in families and every registered metric), so
registering one starts a new result set, as a new metric version does.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import numpy as np

from itagger_lib.errors import ScienceError

__all__ = [
    "ENTRY_POINT_GROUP",
    "MetricPlugin",
    "load_metric",
    "metric",
    "register_metric",
    "registered_metrics",
    "unregister_metric",
]

ENTRY_POINT_GROUP = "itagger.metrics"
MetricFunction = Callable[[np.ndarray], Mapping[str, float]]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# Names a lab's metric may not take: the built-in families and their old names.
_RESERVED = frozenset(
    {"colour", "complexity", "fractal", "symmetry", "lines", "colour_areas", "space", "meta", "nature",
     "composite", "bin", "rating", "vlm"}
)  # fmt: skip


@dataclass(frozen=True)
class MetricPlugin:
    """A registered metric: its name (the prefix of its keys), keys, version, function and
    the import path a worker process loads the function from."""

    name: str
    keys: tuple[str, ...]
    version: str
    function: MetricFunction
    path: str

    @property
    def dotted_keys(self) -> tuple[str, ...]:
        """The keys as stored: ``<name>.<key>``."""
        return tuple(f"{self.name}.{key}" for key in self.keys)

    def spec(self) -> dict[str, Any]:
        """What a run records of it (and a worker needs to find it)."""
        return {"path": self.path, "version": self.version, "keys": list(self.keys)}

    def compute(self, rgb: np.ndarray) -> dict[str, float]:
        """The metric of one working image, checked: exactly its keys, each a number."""
        try:
            values = self.function(rgb)
        except Exception as exc:
            raise ScienceError(
                f"metric {self.name!r} ({self.path}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        if not isinstance(values, Mapping) or set(values) != set(self.keys):
            got = sorted(values) if isinstance(values, Mapping) else type(values).__name__
            raise ScienceError(
                f"metric {self.name!r} ({self.path}) must return a dict with the keys "
                f"{list(self.keys)}, got {got}"
            )
        out = {}
        for key in self.keys:
            value = values[key]
            if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
                raise ScienceError(f"metric {self.name!r}: {key!r} is {value!r}, not a number")
            out[f"{self.name}.{key}"] = float(value)
        return out


_REGISTRY: dict[str, MetricPlugin] = {}
_entry_points_loaded = False


def _import_path(function: Any) -> str:
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", "")
    if not callable(function) or not module or module == "__main__" or "<" in qualname:
        raise ScienceError(
            f"cannot register {function!r} as a metric: worker processes import it by name, so it must be a "
            "function defined at the top of a module they can import (put it in lab_metrics.py beside the "
            "notebook, `from lab_metrics import ...`), not in a notebook cell, a lambda or another function"
        )
    return f"{module}:{qualname}"


def register_metric(
    name: str, function: MetricFunction, keys: Iterable[str], version: str = "1"
) -> MetricPlugin:
    """Register ``function`` (``rgb -> {key: float}``) as the metric ``name``.

    Parameters
    ----------
    name : lower-case letters, digits and ``_``; not a built-in family. Its values are stored
        as ``<name>.<key>``.
    function : defined at the top of an importable module (worker processes import it).
    keys : the keys it returns, every time.
    version : bump it whenever the definition changes (it enters the parameters hash and is
        stored with every value).

    Raises
    ------
    ScienceError
        A bad name or key, a reserved name, a function workers cannot import, or another
        function already registered under ``name``.
    """
    if not isinstance(name, str) or not _NAME.match(name) or name in _RESERVED:
        raise ScienceError(
            f"metric name {name!r}: use lower-case letters, digits and _ (not a built-in family: "
            f"{', '.join(sorted(_RESERVED))})"
        )
    keys = tuple(keys)
    if (
        not keys
        or any(not isinstance(k, str) or not _NAME.match(k) for k in keys)
        or len(set(keys)) < len(keys)
    ):
        raise ScienceError(
            f"metric {name!r}: keys must be distinct names of letters, digits and _, got {keys!r}"
        )
    plugin = MetricPlugin(name, keys, str(version), function, _import_path(function))
    existing = _REGISTRY.get(name)
    if existing is not None and (existing.path, existing.keys, existing.version) != (
        plugin.path, plugin.keys, plugin.version,
    ):  # fmt: skip
        raise ScienceError(
            f"metric {name!r} is already registered ({existing.path}, version {existing.version}); "
            "unregister_metric() it first"
        )
    _REGISTRY[name] = plugin
    return plugin


def metric(name: str, keys: Iterable[str], version: str = "1") -> Callable[[MetricFunction], MetricFunction]:
    """Decorator form of :func:`register_metric`; returns the function unchanged (marked, so an
    entry point can name it)."""

    def register(function: MetricFunction) -> MetricFunction:
        register_metric(name, function, keys, version)
        function.__itagger_metric__ = name  # type: ignore[attr-defined]
        return function

    return register


def unregister_metric(name: str) -> None:
    """Forget the metric ``name`` (registered in code; an entry point comes back in a new process)."""
    _REGISTRY.pop(name, None)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        loaded = point.load()  # importing the module runs its @metric decorator
        if getattr(loaded, "__itagger_metric__", None) != point.name or point.name not in _REGISTRY:
            raise ScienceError(
                f"entry point {point.name!r} = {point.value!r} (group {ENTRY_POINT_GROUP}) must name "
                f"a function decorated with @itagger_lib.science.metric({point.name!r}, keys=...)"
            )


def registered_metrics() -> dict[str, MetricPlugin]:
    """Every registered metric by name (entry points of ``itagger.metrics`` loaded first)."""
    _load_entry_points()
    return dict(_REGISTRY)


def load_metric(name: str, spec: Mapping[str, Any]) -> MetricPlugin:
    """The metric ``name`` as a run recorded it (``spec``: path, version, keys), in this process:
    the registered one, or its function imported from its path (worker processes).

    Raises
    ------
    ScienceError
        It cannot be imported, or this process has another version of it.
    """
    plugin = registered_metrics().get(name)
    if plugin is None:
        module, _, qualname = str(spec.get("path", "")).partition(":")
        try:
            function: Any = importlib.import_module(module)
            for part in qualname.split("."):
                function = getattr(function, part)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ScienceError(
                f"metric {name!r}: cannot import {spec.get('path')!r} in this process ({exc}); "
                "is its module on the workers' path?"
            ) from exc
        plugin = _REGISTRY.get(name) or register_metric(
            name, function, spec.get("keys", ()), spec.get("version", "1")
        )
    if plugin.version != str(spec.get("version")) or list(plugin.keys) != list(spec.get("keys", ())):
        raise ScienceError(
            f"metric {name!r}: this process has version {plugin.version} with keys {list(plugin.keys)}, "
            f"the run asked for version {spec.get('version')} with keys {spec.get('keys')}"
        )
    return plugin
