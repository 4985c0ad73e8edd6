"""The provenance every exported file carries, and reading it back.

Package version, run ids, codebook versions and time of export, with the file's name:
Parquet keeps it in its key-value metadata under ``itagger``, CSV in a sidecar
``<file>.json``. No database URL or secret is written.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from itagger_lib._version import __version__

if TYPE_CHECKING:
    from itagger_lib._types import StrPath
    from itagger_lib.context import Context

__all__ = ["provenance", "provenance_of", "provenance_text", "read_provenance"]


def provenance(ctx: Context, ratings: pa.Table, science_run: int | None) -> dict[str, Any]:
    """The provenance of files written from ``ratings``: the codebooks and runs they come from."""
    import pyarrow.compute as pc

    used = {int(v) for v in pc.unique(ratings["codebook_id"]).to_pylist() if v is not None}
    run_ids = {int(v) for v in pc.unique(ratings["run_id"]).to_pylist() if v is not None}
    return provenance_of(ctx, used, run_ids, science_run)


def provenance_of(
    ctx: Context, codebook_ids: set[int], run_ids: set[int], science_run: int | None
) -> dict[str, Any]:
    """The provenance of files written from ratings of these codebooks and runs, and of the
    metrics of ``science_run``."""
    with ctx.engine.connect() as connection:
        codebooks = pd.read_sql(
            sa.text("SELECT id, name, version, content_hash FROM codebooks ORDER BY id"), connection
        )
    run_ids = set(run_ids)
    if science_run is not None:
        run_ids.add(int(science_run))
    return {
        "package": "image-tagger",
        "package_version": __version__,
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "science_run_id": None if science_run is None else int(science_run),
        "run_ids": sorted(run_ids),
        "codebooks": [
            {"id": int(row.id), "name": row.name, "version": row.version, "content_hash": row.content_hash}
            for row in codebooks.itertuples()
            if int(row.id) in codebook_ids
        ],
    }


def provenance_text(provenance: dict[str, Any], path: Path) -> str:
    """The provenance as stored with the file at ``path`` (JSON, with the file's name)."""
    return json.dumps({**provenance, "file": path.name}, sort_keys=True)


def read_provenance(path: StrPath) -> dict[str, Any]:
    """The provenance stored with an exported file (Parquet metadata or CSV sidecar)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return dict(json.loads(pq.read_metadata(path).metadata[b"itagger"]))
    return dict(json.loads(Path(f"{path}.json").read_text(encoding="utf-8")))
