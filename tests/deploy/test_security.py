"""Row-level security on a real Postgres: the database itself refuses what a role may not do."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from tests.deploy._pgroles import CLAIM, NOW, RECORD, _rate

pytestmark = pytest.mark.postgres


def test_tagger_cannot_insert_or_update_anothers_ratings(stack: dict) -> None:
    e, ids, u = stack["engines"], stack["ids"], stack["users"]
    a_id = _rate(e["alice"], ids, u["alice"], "blind")
    b_id = _rate(e["bob"], ids, u["bob"], "blind")
    with pytest.raises(sa.exc.ProgrammingError, match="only as themselves"):
        _rate(e["alice"], ids, u["bob"], "assisted")  # forging bob's rating through the function
    with e["alice"].connect() as conn:
        alices_item = conn.execute(
            sa.text("SELECT assignment_id FROM ratings WHERE id = :i"), {"i": a_id}
        ).scalar_one()
    with pytest.raises(sa.exc.ProgrammingError, match="only as themselves"), e["alice"].begin() as conn:
        conn.execute(RECORD, {"item": alices_item, "attr": "warmth", "rater": u["bob"], "v": 1, "t": None})
    for sql in (  # no direct write at all: the function is the only way in
        "UPDATE ratings SET value = 1 WHERE id = :i",
        "UPDATE ratings SET rater = 'x' WHERE id = :i",
        "DELETE FROM ratings WHERE id = :i",
    ):
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["alice"].begin() as conn:
            conn.execute(sa.text(sql), {"i": b_id})
    with stack["owner"].connect() as conn:
        assert (
            conn.execute(sa.text("SELECT value FROM ratings WHERE id = :i"), {"i": b_id}).scalar_one() == 3.0
        )
        assert (
            conn.execute(sa.text("SELECT rater FROM ratings WHERE id = :i"), {"i": a_id}).scalar_one()
            == u["alice"]
        )
    with e["alice"].begin() as conn:  # own rating can be changed (the same row, updated)
        again = conn.execute(
            RECORD, {"item": alices_item, "attr": "warmth", "rater": u["alice"], "v": 5, "t": None}
        ).scalar_one()
    assert again == a_id
    # the taggers' writes kept the per-image means (trigger runs as the owner) ...
    with stack["owner"].connect() as conn:
        n, mean = conn.execute(
            sa.text(
                "SELECT n, mean FROM rating_means JOIN ratings r USING (image_id, attribute) WHERE r.id = :i"
            ),
            {"i": a_id},
        ).one()
    assert (n, mean) == (2, 4.0)
    # ... which pool every rater's answers, so a tagger cannot read them
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["alice"].connect() as conn:
        conn.execute(sa.text("SELECT * FROM rating_means"))


def test_tagger_sees_only_own_ratings_in_blind_study(stack: dict) -> None:
    e, ids, u = stack["engines"], stack["ids"], stack["users"]
    _rate(e["alice"], ids, u["alice"], "blind")
    _rate(e["bob"], ids, u["bob"], "blind")
    _rate(e["bob"], ids, u["bob"], "assisted")
    with e["alice"].connect() as conn:
        rows = conn.execute(sa.text("SELECT rater, study_id FROM ratings ORDER BY id")).all()
    assert rows == [(u["alice"], ids["blind"]), (u["bob"], ids["assisted"])]


def test_tagger_cannot_change_settings_codebooks_or_prices(stack: dict) -> None:
    e = stack["engines"]
    for key in ("alice", "res"):
        denied = pytest.raises(sa.exc.ProgrammingError, match="permission denied for table settings")
        with denied, e[key].begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO settings (key, value, updated_at, updated_by)"
                    " VALUES ('vlm.budget', '1', :t, 'x')"
                ),
                {"t": NOW},
            )
        denied = pytest.raises(sa.exc.ProgrammingError, match="permission denied for table codebooks")
        with denied, e[key].begin() as conn:
            conn.execute(sa.text("UPDATE codebooks SET name = 'x'"))
    with e["adm"].begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO settings (key, value, updated_at, updated_by)"
                " VALUES ('vlm.budget', '1', :t, 'x')"
            ),
            {"t": NOW},
        )
        conn.execute(sa.text("DELETE FROM settings WHERE key = 'vlm.budget'"))


def test_researcher_reads_all_ratings(stack: dict) -> None:
    e, ids, u = stack["engines"], stack["ids"], stack["users"]
    _rate(e["alice"], ids, u["alice"], "blind")
    _rate(e["bob"], ids, u["bob"], "blind")
    with e["res"].connect() as conn:
        raters = sorted(conn.execute(sa.text("SELECT rater FROM ratings")).scalars())
    assert raters == sorted([u["alice"], u["bob"]])
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["alice"].connect() as conn:
        conn.execute(sa.text("SELECT * FROM itagger_role_users"))


def test_tagger_claims_queue_slots_only_for_themselves(stack: dict) -> None:
    e, ids, u = stack["engines"], stack["ids"], stack["users"]
    with stack["owner"].connect() as conn:
        open_id = conn.execute(
            sa.text("SELECT min(id) FROM assignments WHERE study_id = :s"), {"s": ids["blind"]}
        ).scalar_one()
    for sql in (  # handing a slot to someone else, taking one directly, adding one, deleting
        "UPDATE assignments SET rater = :r, status = 'assigned' WHERE id = :i",
        "INSERT INTO assignments (study_id, image_id, slot, rater, kind, status)"
        " SELECT study_id, image_id, -1, :r, 'normal', 'assigned' FROM assignments WHERE id = :i",
        "DELETE FROM assignments WHERE id = :i AND CAST(:r AS text) IS NOT NULL",
    ):
        for rater in (u["alice"], u["bob"]):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["alice"].begin() as c:
                c.execute(sa.text(sql), {"r": rater, "i": open_id})
    with pytest.raises(sa.exc.ProgrammingError, match="only as themselves"), e["alice"].begin() as conn:
        conn.execute(CLAIM, {"study": ids["blind"], "rater": u["bob"]})  # claiming for bob
    with e["alice"].begin() as conn:  # claiming for oneself: allowed
        mine = conn.execute(CLAIM, {"study": ids["blind"], "rater": u["alice"]}).mappings().one()
        conn.execute(sa.text("SELECT itagger_set_status(:i, 'skipped')"), {"i": mine["id"]})
    with e["bob"].begin() as conn:
        bobs = conn.execute(CLAIM, {"study": ids["blind"], "rater": u["bob"]}).mappings().one()
    with pytest.raises(sa.exc.ProgrammingError, match="only as themselves"), e["alice"].begin() as conn:
        conn.execute(sa.text("SELECT itagger_set_status(:i, 'done')"), {"i": bobs["id"]})
    with stack["owner"].connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT rater, status FROM assignments WHERE id IN (:a, :b)"),
                {"a": mine["id"], "b": bobs["id"]},
            ).all()
        )
    assert rows == {u["alice"]: "skipped", u["bob"]: "assigned"}


def _db_upgrade(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itagger_lib.cli", "--database-url", url, "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_db_upgrade_reapplies_grants_on_a_secured_database(stack: dict, pg_url: str) -> None:
    owner = stack["owner"]
    with owner.begin() as conn:  # drift, as a new table from a migration would have: no grants
        conn.exec_driver_sql("REVOKE ALL ON images FROM itagger_researcher")
    probe = sa.text("SELECT has_table_privilege('itagger_researcher', 'images', 'SELECT')")
    with owner.connect() as conn:
        assert conn.execute(probe).scalar_one() is False
    done = _db_upgrade(pg_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "row-level security and group grants re-applied" in done.stdout
    with owner.connect() as conn:
        assert conn.execute(probe).scalar_one() is True
    with stack["engines"]["res"].connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM images")).scalar_one() == 1


def test_db_upgrade_leaves_an_unsecured_database_alone(pg_url: str) -> None:
    from itagger_lib.ops.security import is_secured

    done = _db_upgrade(pg_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "re-applied" not in done.stdout
    engine = sa.create_engine(pg_url)
    try:
        assert not is_secured(engine)
    finally:
        engine.dispose()


def test_researchers_take_the_vlm_budget_lock_taggers_cannot_and_settings_stay_admin_only(
    stack: dict,
) -> None:
    """A researcher runs VLM ratings (the budget lock is a row lock on one settings row)."""
    e = stack["engines"]
    lock = sa.text("SELECT key FROM settings WHERE key = 'vlm.ledger_lock' FOR UPDATE")
    with e["res"].begin() as conn:
        assert conn.execute(lock).scalar_one() == "vlm.ledger_lock"
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["alice"].begin() as conn:
        conn.execute(lock)
    with e["res"].begin() as conn:  # any other setting (budgets, kill switch) stays out of reach
        conn.exec_driver_sql("SELECT key FROM settings FOR UPDATE").all()
        n = conn.exec_driver_sql(
            "UPDATE settings SET updated_at = now() WHERE key <> 'vlm.ledger_lock'"
        ).rowcount
    assert n == 0
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["res"].begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO settings (key, value, updated_at, updated_by) VALUES ('vlm.budget', '1', now(), 'r')"
        )
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), e["res"].begin() as conn:
        conn.exec_driver_sql("UPDATE settings SET value = '1' WHERE key = 'vlm.ledger_lock'")


def test_a_researcher_rates_with_a_vlm_on_a_secured_database(
    stack: dict, pg_url: str, sample_dir, tmp_path
) -> None:
    from itagger_lib import Workspace

    owner = Workspace(database_url=pg_url, store=tmp_path / "store", user="owner")
    owner.ingest(sample_dir, progress=False)
    owner.load_codebook()
    owner.close()
    url = stack["engines"]["res"].url.render_as_string(hide_password=False)
    researcher = Workspace(
        database_url=url, store=tmp_path / "store", user=stack["users"]["res"], auto_migrate=False
    )
    try:
        report = researcher.rate_with_vlm(
            provider="stub", model="m", attributes=["coherence"], progress=False
        )
    finally:
        researcher.close()
    # the 12 ingested images; the fixture's stand-in image row has no file and fails alone
    assert report.succeeded == 12, report
    assert [f[0].split(" (")[0] for f in report.failed] == [f"image {stack['ids']['image']}"], report.failed
