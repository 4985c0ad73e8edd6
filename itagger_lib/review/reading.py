"""Review's edge to the database: a workspace's ratings and levels, read for the pure tables.

:func:`load_ratings` (adjudications left out, VLM raters named per model and prompt
version as everywhere, each VLM's answers from its primary run:
:mod:`itagger_lib.vlm.primary`) and :func:`load_levels` (every stored codebook's levels of
measurement) feed the
pure functions of :mod:`~itagger_lib.review.agreement`; :func:`agreement` and
:func:`vlm_agreement` are those tables for a whole workspace (``ws.agreement()``), with
groups from a science bin read through :mod:`itagger_lib.science.results`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from itagger_lib.errors import ArgumentError, remedy
from itagger_lib.ratings.frames import check_names
from itagger_lib.review.agreement import (
    DEFAULT_N_BOOT,
    agreement_table,
    codebook_levels,
    label_vlm_raters,
    vlm_raters,
    vlm_vs_human,
)
from itagger_lib.science.names import canonical
from itagger_lib.science.results import metrics_frame
from itagger_lib.vlm.primary import select_primary

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = ["agreement", "load_levels", "load_ratings", "vlm_agreement"]


RATINGS_QUERY = sa.text(
    "SELECT r.id AS rating_id, r.image_id, r.rater, r.attribute, r.value, r.source, r.is_repeat, "
    "r.repeat_index, r.run_id, r.codebook_id, i.collection, v.prompt_version AS vlm_prompt_version "
    "FROM ratings r JOIN images i ON i.id = r.image_id LEFT JOIN vlm_calls v ON v.id = r.vlm_call_id "
    "WHERE r.source <> 'adjudication' ORDER BY r.rated_at, r.id"
)
CODEBOOKS_QUERY = sa.text("SELECT id, definition FROM codebooks")


def load_ratings(ctx: Context, vlm: str = "primary") -> pd.DataFrame:
    """A workspace's ratings for agreement (adjudications left out, VLM raters labelled).

    ``vlm="primary"``: each VLM rater's answers are those of its primary run
    (:func:`itagger_lib.vlm.primary.select_primary`), so an audit or a second run does not
    count as more answers of the same rater; ``"all"`` keeps every VLM rating (repeats too,
    for self-consistency).
    """
    if vlm not in ("primary", "all"):
        raise ArgumentError(f"vlm={vlm!r}: use 'primary' or 'all'")
    with ctx.engine.connect() as connection:
        ratings = label_vlm_raters(pd.read_sql(RATINGS_QUERY, connection))
    if vlm == "all" or ratings.empty:
        return ratings
    machine = vlm_raters(ratings["rater"])
    primary, _ = select_primary(ctx, ratings[machine])
    return pd.concat([ratings[~machine], primary]).sort_index()


def load_levels(ctx: Context) -> tuple[dict[str, str], dict[str, list[float]]]:
    """Levels of measurement and domains of every stored codebook (newer ones win)."""
    with ctx.engine.connect() as connection:
        codebooks = pd.read_sql(CODEBOOKS_QUERY, connection)
    levels: dict[str, str] = {}
    domains: dict[str, list[float]] = {}
    for definition in codebooks.sort_values("id")["definition"]:
        more_levels, more_domains = codebook_levels(definition or {})
        levels.update(more_levels)
        domains.update(more_domains)
    return levels, domains


def _select(ctx: Context, levels: dict[str, str], attributes: Sequence[str] | None) -> dict[str, str]:
    """The levels of the ``attributes`` asked for; an unknown one raises
    :class:`~itagger_lib.errors.UnknownNameError`, a multi-label one :class:`ArgumentError`."""
    if attributes is None:
        return levels
    check_names(ctx, attributes=attributes)
    unusable = [a for a in attributes if a not in levels]
    if unusable:
        raise ArgumentError(
            f"no agreement coefficient for {', '.join(map(repr, unusable))}: multi-label attributes "
            "have no single value per rater (compare each label's yes/no instead); attributes "
            f"with one: {', '.join(sorted(levels))}"
        )
    return {a: levels[a] for a in attributes}


def agreement(
    ctx: Context,
    attributes: Sequence[str] | None = None,
    raters: Sequence[str] | None = None,
    by: pd.Series | str | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
) -> pd.DataFrame:
    """Agreement table of a workspace (see :func:`agreement_table`).

    Reads ratings (adjudications left out) and codebook levels through ``ctx.engine``.
    ``raters`` defaults to every non-VLM rater (VLMs are compared in :func:`vlm_agreement`);
    a VLM is named as everywhere, ``vlm:<provider>/<model>@<prompt version>``, and answers
    with its primary run. An unknown rater or attribute raises
    :class:`~itagger_lib.errors.UnknownNameError` listing the known ones;
    ``by``: a Series indexed by image id, ``"collection"``, or a science bin of the newest
    science run (``"bin.<metric>"``, or just the metric key: its low/mid/high bin).
    """
    ratings = load_ratings(ctx)
    levels, domains = load_levels(ctx)
    if raters is not None:
        check_names(ctx, raters=raters)
        ratings = ratings[ratings["rater"].isin(list(raters))]
    else:
        ratings = ratings[~vlm_raters(ratings["rater"])]
    group = by
    if isinstance(by, str):
        group = _groups(ctx, ratings, by)
    table = agreement_table(
        ratings, _select(ctx, levels, attributes), by=group, n_boot=n_boot, seed=seed, domains=domains
    )
    return table


def _groups(ctx: Context, ratings: pd.DataFrame, by: str) -> pd.Series:
    """Each image's group for ``by=<name>``: a ratings column (collection) or a science bin."""
    if by == "collection":
        return ratings.drop_duplicates("image_id").set_index("image_id")[by]
    metrics = metrics_frame(ctx, bins=True)
    name = canonical(by if by.startswith("bin.") else f"bin.{by}")
    if name not in metrics.columns:
        known = sorted(c for c in metrics.columns if str(c).startswith("bin."))
        raise ArgumentError(
            remedy(f"by={by!r}", f"--by {by}")
            + ": not 'collection' nor a science bin of the newest science run; "
            + (
                f"bins: {', '.join(known)}"
                if known
                else "run the science pipeline first ("
                + remedy("ws.run_science()", "`itagger science`")
                + ")"
            )
        )
    return metrics[name]


def vlm_agreement(ctx: Context, attributes: Sequence[str] | None = None) -> pd.DataFrame:
    """Each VLM (model × prompt version) against the workspace's humans; see :func:`vlm_vs_human`."""
    levels, domains = load_levels(ctx)
    return vlm_vs_human(load_ratings(ctx), _select(ctx, levels, attributes), domains=domains)
