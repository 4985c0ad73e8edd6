"""The Bayesian-network export: every numeric column of the per-image table as low/mid/high.

Science metrics use the tertile cut points their run stored (as the science bins do);
other columns (mean ratings, VLM means) get tertiles computed here, and each variable says
which (``cut_source``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["STATES", "bn_frame"]

STATES = ("low", "mid", "high")


def bn_frame(
    per_image: pd.DataFrame, cut_points: Mapping[str, Sequence[float]]
) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Discretise a per-image table into low/mid/high states for Bayesian-network modelling.

    ``x <= low`` → low, ``low < x <= high`` → mid, ``x > high`` → high (as the science
    bins). Columns with a stored cut point use it; other numeric columns (``rating.*``,
    ``vlm.*``, metrics without stored cut points) get tertile cut points computed here, and
    the variable says so (``cut_source``).

    Returns
    -------
    (states, variables)
        ``states``: image × variable, values low/mid/high (empty where missing);
        ``variables``: one dict per variable: name, source (metric, rating, vlm),
        states, cut_points, cut_source (stored, tertiles).
    """
    columns = [
        c
        for c in per_image.columns
        if pd.api.types.is_numeric_dtype(per_image[c])
        and not c.startswith(("bin.", "meta."))
        and c not in ("width", "height")
        and per_image[c].notna().any()
    ]
    states = pd.DataFrame(index=per_image.index)
    variables: list[dict[str, Any]] = []
    for column in columns:
        values = per_image[column].astype(float)
        if column in cut_points:
            low, high = (float(v) for v in cut_points[column])
            origin = "stored"
        else:
            low, high = (float(v) for v in np.nanquantile(values, [1 / 3, 2 / 3]))
            origin = "tertiles"
        state = np.where(values <= low, "low", np.where(values <= high, "mid", "high"))
        states[column] = pd.Series(state, index=values.index).where(values.notna(), "")
        source = column.split(".", 1)[0] if column.startswith(("rating.", "vlm.")) else "metric"
        variables.append(
            {
                "name": column,
                "source": source,
                "states": list(STATES),
                "cut_points": [low, high],
                "cut_source": origin,
            }
        )
    return states, variables
