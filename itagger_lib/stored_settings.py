"""Settings stored in the workspace database (table ``settings``), shared by everyone using it.

``vlm.provider``, ``vlm.model``, ``vlm.budget_usd`` and ``vlm.kill_switch`` live here, set
from the admin cockpit or ``ws.set_setting``; where the data lives and the limits of one
process come from the environment instead (:mod:`itagger_lib.config`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from itagger_lib.db.models import Setting, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from itagger_lib._types import JSONValue

__all__ = ["get_setting", "set_setting"]


def get_setting(engine: Engine, key: str, default: JSONValue = None) -> JSONValue:
    """The stored value of ``key``, or ``default`` when it has none."""
    with engine.connect() as connection:
        value = connection.execute(sa.select(Setting.value).where(Setting.key == key)).scalar()
    return default if value is None else value


def set_setting(engine: Engine, key: str, value: JSONValue, user: str) -> None:
    """Store ``value`` (anything JSON can hold) under ``key``, recording who set it and when."""
    with engine.begin() as connection:
        updated = connection.execute(
            sa.update(Setting)
            .where(Setting.key == key)
            .values(value=value, updated_at=utcnow(), updated_by=user)
        )
        if updated.rowcount == 0:
            connection.execute(
                sa.insert(Setting).values(key=key, value=value, updated_at=utcnow(), updated_by=user)
            )
