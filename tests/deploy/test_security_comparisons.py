"""Row-level security of comparative studies on a real Postgres: a tagger writes their own
schedule and judgements through the library, and the database refuses forged ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from itagger_lib.comparisons.queue import next_trial, record_choice
from itagger_lib.errors import ItaggerError, PermissionDeniedError
from itagger_lib.ops import hubconfig
from itagger_lib.ops.security import apply_row_level_security, map_role_sql

pytestmark = pytest.mark.postgres


@pytest.fixture
def taggers(pg_url: str, tmp_path: Path, sample_dir: Path) -> Iterator[dict]:
    from itagger_lib import Workspace

    owner = Workspace(database_url=pg_url, store=tmp_path / "store", home=tmp_path / "home", user="owner")
    owner.ingest(sample_dir, progress=False)
    owner.create_study(
        "pairs", design="pairwise", question="coherence", pairs_per_image=2, raters_per_image=2
    )
    apply_row_level_security(owner.engine)
    tag = uuid.uuid4().hex[:6]
    users = {"alice": f"alice{tag}", "bob": f"bob{tag}"}
    spaces = {}
    with owner.engine.begin() as conn:
        for user in users.values():
            role = hubconfig.role_name(user)
            for stmt in hubconfig.create_role_sql(role, "pw-not-used-trust-auth", "tagger"):
                conn.exec_driver_sql(stmt)
            conn.exec_driver_sql(map_role_sql(role, user))
    for key, user in users.items():
        url = sa.make_url(pg_url).set(username=hubconfig.role_name(user), password=None)
        spaces[key] = Workspace(
            database_url=url.render_as_string(hide_password=False),
            store=tmp_path / "store",
            home=tmp_path / key,
            auto_migrate=False,
            user=user,
        )
    try:
        yield {"owner": owner, "users": users, **spaces}
    finally:
        for space in spaces.values():
            space.close()
        owner.close()
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for user in users.values():
                conn.exec_driver_sql(f'DROP ROLE IF EXISTS "{hubconfig.role_name(user)}"')
        admin.dispose()


def test_tagger_judges_own_trials_and_cannot_forge(taggers: dict) -> None:
    alice, bob, users = taggers["alice"], taggers["bob"], taggers["users"]
    trial = next_trial(alice, "pairs")  # writes alice's schedule as alice
    record_choice(alice, trial, trial.items[0])
    bob_trial = next_trial(bob, "pairs")
    record_choice(bob, bob_trial, bob_trial.items[1])
    assert len(alice.choices("pairs")) == 1  # bob's choice is hidden in a blind study
    assert len(taggers["owner"].choices("pairs")) == 2
    with pytest.raises(ItaggerError, match="belongs to"):
        record_choice(alice, bob_trial, bob_trial.items[0], rater=users["alice"])
    with pytest.raises(PermissionDeniedError, match="row-level security"), alice.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO comparison_choices (trial_id, study_id, rater, source, tie, chosen_at)"
                " VALUES (:t, :s, :r, 'human', true, now())"
            ),
            {"t": bob_trial.id, "s": bob_trial.study_id, "r": users["bob"]},
        )
    with pytest.raises(PermissionDeniedError, match="row-level security"), alice.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO comparison_choices (trial_id, study_id, rater, source, tie, chosen_at)"
                " VALUES (:t, :s, :r, 'vlm', true, now())"
            ),
            {"t": trial.id, "s": trial.study_id, "r": users["alice"]},
        )
    with alice.engine.begin() as conn:  # bob's trials cannot be changed
        n = conn.execute(
            sa.text("UPDATE comparison_trials SET status = 'open' WHERE id = :i"), {"i": bob_trial.id}
        )
    assert n.rowcount == 0
