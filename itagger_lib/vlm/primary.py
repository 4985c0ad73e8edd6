"""The primary VLM run: which of a model's runs the per-image values come from.

A model asked with one prompt version is one rater, ``vlm:<provider>/<model>@<prompt
version>`` (:func:`rater_name`), and may be asked many times: a first run, a resumed one, a
self-consistency audit at temperature 0.7, a forced re-ask. Per-image values (the export's
table, the BN export, agreement with humans) take one declared run per rater, its *primary
run*: the run chosen with :func:`set_primary_run`, else the newest finished run that is not
an audit. Its answers are the first presentations (repeat 0) of the calls made with its
configuration (provider, model, prompt hash, temperature, seed, max tokens, image size):
the calls it made and the cached calls of the same configuration it reused, which are the
same request. Audits and repeats stay in the long ratings, with their run ids.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pandas as pd
import sqlalchemy as sa

from itagger_lib.db.models import Run
from itagger_lib.errors import UnknownNameError

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = [
    "AUDIT",
    "configuration",
    "is_audit",
    "primary_runs",
    "rater_name",
    "select_primary",
    "set_primary_run",
    "vlm_runs",
]

#: The ``purpose`` a self-consistency audit records in its run's parameters.
AUDIT = "audit"
# Statuses of a run whose answers may stand for the model: a run still going or one that
# produced nothing is not chosen by default.
_FINISHED = ("succeeded", "partial", "interrupted")
_CALL_PARAMETERS = ("temperature", "seed", "max_tokens", "long_side")


def rater_name(provider: str, model: str, prompt_version: str | None) -> str:
    """The one name of a VLM rater everywhere: ``vlm:<provider>/<model>@<prompt version>``."""
    name = f"vlm:{provider}/{model}"
    return name if prompt_version is None else f"{name}@{prompt_version}"


def _parameters(value: Any) -> dict[str, Any]:
    return dict(json.loads(value) if isinstance(value, str) else (value or {}))


def is_audit(parameters: dict[str, Any]) -> bool:
    """Whether a VLM run was a self-consistency audit (runs recorded before the ``purpose``
    parameter existed: asked more than once per image)."""
    if "purpose" in parameters:
        return parameters["purpose"] == AUDIT
    return int(parameters.get("repeats") or 1) > 1


def configuration(parameters: dict[str, Any]) -> str:
    """What makes two VLM runs ask the same request: provider, model, prompt hash and the
    sampling parameters (those of the ledger's cache key), as canonical JSON."""
    keys = {k: parameters.get(k) for k in ("provider", "model", "prompt_hash", *_CALL_PARAMETERS)}
    return json.dumps(keys, sort_keys=True, default=str)


def vlm_runs(ctx: Context) -> pd.DataFrame:
    """Every VLM run, newest first: its rater, purpose, status, sampling, and whether it is its
    rater's primary run (``primary``) and was chosen as such (``is_primary``)."""
    with ctx.engine.connect() as connection:
        rows = connection.execute(
            sa.select(Run.id, Run.status, Run.started_at, Run.n_done, Run.parameters, Run.is_primary)
            .where(Run.kind == "vlm")
            .order_by(Run.id.desc())
        ).all()
    records = []
    for row in rows:
        parameters = _parameters(row.parameters)
        records.append(
            {
                "run_id": int(row.id),
                "rater": rater_name(
                    str(parameters.get("provider")),
                    str(parameters.get("model")),
                    parameters.get("prompt_version"),
                ),
                "purpose": AUDIT if is_audit(parameters) else "rating",
                "status": row.status,
                "started_at": row.started_at,
                "n_done": row.n_done,
                "temperature": parameters.get("temperature"),
                "repeats": parameters.get("repeats"),
                "is_primary": bool(row.is_primary),
                "configuration": configuration(parameters),
            }
        )
    columns = ["run_id", "rater", "purpose", "status", "started_at", "n_done", "temperature", "repeats",
               "is_primary", "configuration"]  # fmt: skip
    frame = pd.DataFrame(records, columns=columns)
    chosen = _choose(frame)
    frame.insert(frame.columns.get_loc("is_primary"), "primary", frame["run_id"].isin(chosen.values()))
    return frame.set_index("run_id")


def _choose(runs: pd.DataFrame) -> dict[str, int]:
    """Rater → primary run id: the run marked primary, else the newest finished non-audit run."""
    chosen: dict[str, int] = {}
    for rater, group in runs.groupby("rater", sort=True):
        marked = group[group["is_primary"]]
        default = group[(group["purpose"] != AUDIT) & group["status"].isin(_FINISHED)]
        pick = marked if not marked.empty else default
        if not pick.empty:
            chosen[str(rater)] = int(pick["run_id"].max())
    return chosen


def primary_runs(ctx: Context) -> dict[str, int]:
    """Each VLM rater's primary run id (see the module docstring)."""
    return _choose(vlm_runs(ctx).reset_index())


def set_primary_run(ctx: Context, run: int) -> str:
    """Declare VLM run ``run`` the primary run of its rater (model × prompt version), so
    per-image values come from it; returns the rater. An audit run may be chosen too.

    Raises
    ------
    UnknownNameError
        ``run`` is not a VLM run of this workspace (the message lists them).
    """
    runs = vlm_runs(ctx)
    if int(run) not in runs.index:
        raise UnknownNameError("VLM run", [run], runs.index, hint="see ws.vlm_runs()")
    rater = str(runs.loc[int(run), "rater"])
    same = [int(i) for i in runs.index[runs["rater"] == rater]]
    with ctx.engine.begin() as connection:
        connection.execute(sa.update(Run).where(Run.id.in_(same)).values(is_primary=False))
        connection.execute(sa.update(Run).where(Run.id == int(run)).values(is_primary=True))
    return rater


def select_primary(ctx: Context, ratings: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """The VLM ratings among ``ratings`` that come from each rater's primary run.

    ``ratings`` are long VLM ratings with ``rater``, ``run_id`` and ``repeat_index`` (raters
    named as stored). Kept: repeat 0 of runs with the primary run's configuration. A rater
    whose ratings come from no VLM run (imported VLM ratings) keeps the ratings of its newest
    run, one whose ratings have no run at all keeps them all. Returns the kept rows and, per
    rater, ``{"primary_run_id", "run_ids"}`` (the runs whose ratings were kept), what a
    file's provenance names.
    """
    if ratings.empty:
        return ratings, {}
    runs = vlm_runs(ctx)
    chosen = _choose(runs.reset_index())
    first = ratings[ratings["repeat_index"].fillna(0).astype(int) == 0]
    keep = pd.Series(False, index=first.index)
    used: dict[str, dict[str, Any]] = {}
    for rater, rows in first.groupby("rater", sort=True):
        run_ids = rows["run_id"]
        if str(rater) in chosen:
            primary = chosen[str(rater)]
            same = runs.index[runs["configuration"] == runs.loc[primary, "configuration"]]
            mask = run_ids.isin([int(i) for i in same])
        elif run_ids.notna().any():
            primary = int(run_ids.max())
            mask = run_ids == primary
        else:  # stored without a run: nothing to choose between
            primary, mask = None, run_ids.isna()
        keep[rows.index[mask.to_numpy()]] = True
        used[str(rater)] = {
            "primary_run_id": primary,
            "run_ids": sorted(int(i) for i in run_ids[mask].dropna().unique()),
        }
    return first[keep], used
