"""The hub's roles on a real Postgres, for the security tests: a workbench database secured
by ``itagger secure-db`` with two taggers, a researcher and an admin logged in as the login
roles the hub creates (fixture ``stack``, registered in conftest.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from itagger_lib.ops import hubconfig
from itagger_lib.ops.security import apply_row_level_security, map_role_sql

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DEFINITION = {
    "name": "cb",
    "version": "1",
    "attributes": [
        {"key": "warmth", "label": "Warmth", "question": "?", "type": "ordinal",
         "levels": [{"value": v, "label": f"level {v}"} for v in range(1, 6)]},
        {"key": "depth", "label": "Depth", "question": "?", "type": "continuous", "min": 0.0, "max": 1.0},
        {"key": "style", "label": "Style", "question": "?", "type": "categorical",
         "levels": [{"value": "modern"}, {"value": "classic"}]},
    ],
}  # fmt: skip


def _seed(conn: sa.Connection) -> dict[str, int]:
    img = conn.execute(
        sa.text(
            "INSERT INTO images (sha256, ext, format, width, height, bytes, source_name, source_path,"
            " ingested_at, ingested_by) VALUES (:s, 'jpg', 'JPEG', 1, 1, 1, 'a.jpg', '/a.jpg', :t, 'owner')"
            " RETURNING id"
        ),
        {"s": "0" * 64, "t": NOW},
    ).scalar_one()
    cb = conn.execute(
        sa.text(
            "INSERT INTO codebooks (name, version, content_hash, source_text, definition, created_at,"
            " created_by)"
            " VALUES ('cb', '1', 'h', :s, :d, :t, 'owner') RETURNING id"
        ),
        {"t": NOW, "d": json.dumps(DEFINITION), "s": json.dumps(DEFINITION)},
    ).scalar_one()
    ids = {"image": img, "codebook": cb}
    for mode in ("blind", "assisted"):
        ids[mode] = conn.execute(
            sa.text(
                "INSERT INTO studies (name, codebook_id, raters_per_image, seed, mode, design, created_at,"
                " created_by)"
                " VALUES (:n, :cb, 3, 0, :m, '{}', :t, 'owner') RETURNING id"
            ),
            {"n": f"study_{mode}", "cb": cb, "m": mode, "t": NOW},
        ).scalar_one()
        for slot in range(3):  # k = 3 open slots of the image
            conn.execute(
                sa.text(
                    "INSERT INTO assignments (study_id, image_id, slot, kind, status)"
                    " VALUES (:s, :i, :n, 'normal', 'open')"
                ),
                {"s": ids[mode], "i": img, "n": slot},
            )
    return ids


CLAIM = sa.text("SELECT * FROM itagger_claim_next(:study, :rater, NULL, NULL)")
RECORD = sa.text(
    "SELECT itagger_record_rating(:item, NULL, :attr, NULL, :rater, :v, :t, NULL, NULL, NULL, true)"
)


@pytest.fixture
def stack(pg_url: str) -> Iterator[dict]:
    from itagger_lib import Workspace

    ws = Workspace(database_url=pg_url, store=None, auto_migrate=True)
    owner = ws.engine
    apply_row_level_security(owner)
    apply_row_level_security(owner)  # idempotent
    tag = uuid.uuid4().hex[:6]
    users = {"alice": f"alice{tag}", "bob": f"bob{tag}", "res": f"res{tag}", "adm": f"adm{tag}"}
    groups = {"alice": "tagger", "bob": "tagger", "res": "researcher", "adm": "admin"}
    engines: dict[str, sa.Engine] = {}
    with owner.begin() as conn:
        ids = _seed(conn)
        for key, user in users.items():
            role = hubconfig.role_name(user)
            for stmt in hubconfig.create_role_sql(role, "pw-not-used-trust-auth", groups[key]):
                conn.exec_driver_sql(stmt)
            conn.exec_driver_sql(map_role_sql(role, user))
            engines[key] = sa.create_engine(sa.make_url(pg_url).set(username=role, password=None))
    try:
        yield {"owner": owner, "users": users, "engines": engines, "ids": ids}
    finally:
        for e in engines.values():
            e.dispose()
        ws.close()
        owner.dispose()
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for user in users.values():
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{hubconfig.role_name(user)}"')
        admin.dispose()


def _rate(engine: sa.Engine, ids: dict, rater: str, study: str, v: float = 3.0) -> int:
    """Claim the rater's item of ``study`` and answer warmth ``v``, as the hub's tagging app does."""
    with engine.begin() as conn:
        item = conn.execute(CLAIM, {"study": ids[study], "rater": rater}).mappings().one()
        return conn.execute(
            RECORD, {"item": item["id"], "attr": "warmth", "rater": rater, "v": v, "t": None}
        ).scalar_one()
