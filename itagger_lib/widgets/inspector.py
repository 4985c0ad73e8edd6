"""``Inspector``: one image with its metrics (and their percentiles), every rating, overlays.

A thin widget: the metrics and their percentiles come from
:mod:`itagger_lib.science.results`, the ratings from :mod:`itagger_lib.ratings.frames`, and
their per-image values by level of measurement from :mod:`itagger_lib.export.table` (the
same numbers as ``ws.table()``).
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import cv2
import ipywidgets as W
import numpy as np
import pandas as pd

from itagger_lib.export.table import rating_columns
from itagger_lib.imaging import encode_jpeg, load_rgb
from itagger_lib.ratings.frames import image_ratings
from itagger_lib.science.results import percentiles

if TYPE_CHECKING:
    from itagger_lib._types import ImageRef
    from itagger_lib.workspace import Workspace

OVERLAYS = ("none", "edges", "complexity")


def overlay(rgb: np.ndarray, kind: str) -> np.ndarray:
    """The image with Canny edges in red, or a local edge-density heat map, blended on top."""
    if kind == "none":
        return rgb
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(cv2.GaussianBlur(grey, (0, 0), 1.0), 40, 100)
    if kind == "edges":
        out = (rgb * 0.6).astype(np.uint8)
        out[edges > 0] = (255, 40, 40)
        return out
    if kind == "complexity":
        size = max(9, (min(grey.shape) // 16) | 1)
        density = cv2.blur((edges > 0).astype(np.float32), (size, size))
        scaled = np.clip(density / max(float(density.max()), 1e-6) * 255, 0, 255).astype(np.uint8)
        heat = cv2.cvtColor(cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
        return cv2.addWeighted(rgb, 0.45, heat, 0.55, 0)
    raise ValueError(f"overlay {kind!r}: use one of {', '.join(OVERLAYS)}")


class Inspector(W.VBox):
    """One image, large, with optional edge / complexity overlays, its science metrics and
    their percentile in the collection, its ratings summarised by level of measurement (as
    in ``ws.table()``), and every rating with the VLM's rationale."""

    def __init__(self, ws: Workspace, image: ImageRef, long_side: int = 768) -> None:
        self.ws = ws
        self.row: dict[str, Any] = ws.image(image)
        self.long_side = long_side
        self._rgb = load_rgb(
            ws.store.path_for(self.row["sha256"], self.row["ext"]),
            long_side,
            size_hint=max(self.row["width"], self.row["height"]),
        )
        self.picture = W.Image(format="jpeg", layout=W.Layout(max_width=f"{long_side}px"))
        self.overlay = W.ToggleButtons(options=OVERLAYS, value="none", description="overlay")
        self.overlay.observe(lambda change: self.show(change["new"]), "value")
        self.metrics = percentiles(ws, int(self.row["id"]))
        self.ratings = image_ratings(ws, int(self.row["id"]))
        summary = rating_columns(ws, self.ratings)
        self.summary = summary.iloc[0] if len(summary) else pd.Series(dtype=object)
        title = W.HTML(
            f"<h3>#{self.row['id']} {html.escape(self.row['source_name'])}</h3>"
            f"<code>{self.row['sha256'][:16]}…</code> {self.row['width']}×{self.row['height']} "
            f"{self.row['format']}"
        )
        metrics_html = W.HTML(self._metrics_html())
        ratings_html = W.HTML(self._summary_html() + self._ratings_html())
        super().__init__(
            [
                title,
                self.overlay,
                self.picture,
                W.HBox([metrics_html, ratings_html], layout=W.Layout(grid_gap="24px")),
            ]
        )
        self.show("none")

    def show(self, kind: str) -> None:
        self.picture.value = encode_jpeg(overlay(self._rgb, kind), quality=88)

    def _metrics_html(self) -> str:
        if self.metrics.empty:
            return "<p><i>No science metrics yet: run <code>ws.run_science()</code>.</i></p>"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v:.4g}</td><td>{p:.0f}</td></tr>"
            for k, v, p in zip(self.metrics.index, self.metrics["value"], self.metrics["percentile"])
        )
        return f"<table><tr><th>metric</th><th>value</th><th>percentile</th></tr>{rows}</table>"

    def _summary_html(self) -> str:
        if not len(self.summary):
            return ""
        rows = "".join(
            f"<tr><td>{html.escape(str(name))}</td><td>{html.escape(_shown(value))}</td></tr>"
            for name, value in self.summary.items()
            if _shown(value)
        )
        return f"<table><tr><th>per image</th><th>value</th></tr>{rows}</table>"

    def _ratings_html(self) -> str:
        if self.ratings.empty:
            return "<p><i>No ratings yet.</i></p>"
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(str(r[c])) if r[c] is not None else ''}</td>"
                for c in ("attribute", "rater", "source", "value", "mode", "rationale")
            )
            + "</tr>"
            for r in self.ratings.to_dict("records")
        )
        head = "".join(
            f"<th>{c}</th>" for c in ("attribute", "rater", "source", "value", "mode", "rationale")
        )
        return f"<table><tr>{head}</tr>{rows}</table>"


def _shown(value: Any) -> str:
    """A summary value as text: numbers to 3 significant digits, missing as empty."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, float | np.floating):
        return f"{value:.3g}"
    return str(value)
