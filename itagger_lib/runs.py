"""Run records: every job (ingest, science, vlm, batch, ...) and the inputs it failed on."""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from itagger_lib._version import __version__
from itagger_lib.db.dml import inserted_id
from itagger_lib.db.models import Run, RunFailure, utcnow
from itagger_lib.errors import remedy

if TYPE_CHECKING:
    import pandas as pd

# "waiting": a VLM run whose requests are in a provider batch (collected later, by any process)
STATUSES = ("running", "waiting", "succeeded", "partial", "failed", "interrupted")


def canonical_json(value: object) -> str:
    """JSON with sorted keys and no spaces, so equal parameters hash equally."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def hash_parameters(parameters: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``parameters``."""
    return hashlib.sha256(canonical_json(parameters).encode()).hexdigest()


def start_run(
    engine: Engine,
    kind: str,
    parameters: Mapping[str, Any],
    user: str,
    *,
    params_hash: str | None = None,
    n_total: int = 0,
) -> int:
    """Record a new run as ``running`` and return its id.

    Runs of the same ``kind`` left ``running`` by a dead process of this host are marked
    ``interrupted`` first (:func:`close_stale_runs`), whatever the kind.
    """
    close_stale_runs(engine, kind=kind)
    with engine.begin() as connection:
        result = connection.execute(
            sa.insert(Run).values(
                kind=kind,
                parameters=dict(parameters),
                params_hash=params_hash or hash_parameters(parameters),
                version=__version__,
                status="running",
                started_at=utcnow(),
                created_by=user,
                n_total=n_total,
                details={"owner": {"host": socket.gethostname(), "pid": os.getpid()}},
            )
        )
        return inserted_id(result)


def failure_rows(run_id: int, failures: Iterable[tuple[str, int | None, str]]) -> list[dict[str, Any]]:
    """``run_failures`` rows of ``(input, image id or None, reason)`` failures."""
    now = utcnow()
    return [
        {"run_id": run_id, "input": item, "image_id": image_id, "reason": reason, "at": now}
        for item, image_id, reason in failures
    ]


def record_failures(
    connection: sa.Connection, run_id: int, failures: Iterable[tuple[str, int | None, str]]
) -> None:
    """Insert the failures of run ``run_id`` in the caller's transaction."""
    rows = failure_rows(run_id, failures)
    if rows:
        connection.execute(sa.insert(RunFailure), rows)


def note_run(connection: sa.Connection, run_id: int, notes: Iterable[str]) -> None:
    """Append ``notes`` (what happened during run ``run_id`` that is no input's failure: a
    Dask worker lost and its tasks retried) to the run's ``details["notes"]``, each with the
    time it was written, in the caller's transaction."""
    new = [{"at": utcnow().isoformat(timespec="seconds"), "note": str(text)} for text in notes]
    if not new:
        return
    details = connection.execute(sa.select(Run.details).where(Run.id == run_id)).scalar_one() or {}
    details = {**details, "notes": [*details.get("notes", []), *new]}
    connection.execute(sa.update(Run).where(Run.id == run_id).values(details=details))


def update_run(engine_or_connection: Engine | sa.Connection, run_id: int, **values: object) -> None:
    """Set columns of run ``run_id`` (in the caller's transaction when given a connection)."""
    statement = sa.update(Run).where(Run.id == run_id).values(**values)
    if isinstance(engine_or_connection, Engine):
        with engine_or_connection.begin() as connection:
            connection.execute(statement)
    else:
        engine_or_connection.execute(statement)


def finish_run(
    engine: Engine,
    run_id: int,
    *,
    status: str | None = None,
    error: str | None = None,
    details: Mapping[str, Any] | None = None,
    **counts: int,
) -> str:
    """Close a run; without ``status`` it is ``succeeded``, or ``partial`` if anything failed."""
    with engine.begin() as connection:
        run = connection.execute(sa.select(Run).where(Run.id == run_id)).mappings().one()
        n_failed = counts.get("n_failed", run["n_failed"])
        n_done = counts.get("n_done", run["n_done"])
        if status is None:
            if n_failed and not n_done:
                status = "failed"
            elif n_failed:
                status = "partial"
            else:
                status = "succeeded"
        values: dict[str, Any] = {"status": status, "finished_at": utcnow(), **counts}
        if error is not None:
            values["error"] = error
        if details is not None:
            values["details"] = {**(run["details"] or {}), **details}
        connection.execute(sa.update(Run).where(Run.id == run_id).values(**values))
    return status


def close_stale_runs(engine: Engine, *, kind: str | None = None, params_hash: str | None = None) -> int:
    """Mark ``running`` runs of this host whose process is gone as ``interrupted``."""
    host = socket.gethostname()
    query = sa.select(Run.id, Run.details).where(Run.status == "running")
    if kind:
        query = query.where(Run.kind == kind)
    if params_hash:
        query = query.where(Run.params_hash == params_hash)
    closed = 0
    with engine.begin() as connection:
        for run_id, details in connection.execute(query).all():
            owner = (details or {}).get("owner", {})
            if owner.get("host") != host or not owner.get("pid"):
                continue
            try:
                os.kill(int(owner["pid"]), 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            connection.execute(
                sa.update(Run)
                .where(Run.id == run_id)
                .values(
                    status="interrupted",
                    finished_at=utcnow(),
                    error="the process running it stopped (killed or crashed); rerun to resume",
                )
            )
            closed += 1
    return closed


def see_failures(run_id: int | None) -> str:
    """Where the failures of run ``run_id`` are listed, in the words of the user's surface."""
    return remedy(f"ws.failures({run_id})", f"itagger failures {run_id}")


def runs_frame(engine: Engine, kind: str | None = None) -> pd.DataFrame:
    """Runs, newest first (kind, parameters, version, status, counts, error, output), by id."""
    import pandas as pd

    query = sa.select(Run).order_by(Run.id.desc())
    if kind:
        query = query.where(Run.kind == kind)
    with engine.connect() as connection:
        return pd.read_sql(query, connection, index_col="id")


def failures_frame(engine: Engine, run_id: int | None = None) -> pd.DataFrame:
    """Recorded failures (input, image and reason) of one run, or of every run, by id."""
    import pandas as pd

    query = sa.select(RunFailure).order_by(RunFailure.id)
    if run_id is not None:
        query = query.where(RunFailure.run_id == run_id)
    with engine.connect() as connection:
        return pd.read_sql(query, connection, index_col="id")
