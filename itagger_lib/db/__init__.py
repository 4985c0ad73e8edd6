"""The workbench database: models, engine and Alembic migrations."""

from __future__ import annotations

from itagger_lib.db.engine import make_engine, redact_url
from itagger_lib.db.migrate import current_revision, head_revision, upgrade

__all__ = ["current_revision", "head_revision", "make_engine", "redact_url", "upgrade"]
