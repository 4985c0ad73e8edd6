"""A workspace at a glance: counts, versions, where its data lives (``ws.status()``, ``itagger status``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from itagger_lib._version import __version__
from itagger_lib.db.engine import redact_url
from itagger_lib.db.migrate import current_revision, head_revision
from itagger_lib.db.models import Image, Run, RunFailure

if TYPE_CHECKING:
    from itagger_lib.context import Context

__all__ = ["status"]


def status(ctx: Context) -> dict[str, Any]:
    """Package version, database (password hidden), schema revision and head, store, counts
    of images, runs and failures, and the user."""
    with ctx.engine.connect() as connection:
        images = connection.execute(sa.select(sa.func.count()).select_from(Image)).scalar_one()
        runs = connection.execute(sa.select(sa.func.count()).select_from(Run)).scalar_one()
        failures = connection.execute(sa.select(sa.func.count()).select_from(RunFailure)).scalar_one()
    return {
        "package_version": __version__,
        "database": redact_url(ctx.settings.database_url),
        "schema_revision": current_revision(ctx.engine),
        "schema_head": head_revision(),
        "store": str(ctx.store.root),
        "images": images,
        "runs": runs,
        "failures": failures,
        "user": ctx.user,
    }
