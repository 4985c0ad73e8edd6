"""Each role can only do its job: the attacks of issue 16 (item 2), run as the roles the hub
creates on a real Postgres, each refused while the legitimate path keeps working.
docs/security.md ("Database roles") lists which test proves which line."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from itagger_lib import Workspace
from itagger_lib.errors import PermissionDeniedError, RatingError, StoreReadOnlyError
from itagger_lib.ops import hubconfig
from itagger_lib.ops.security import apply_row_level_security
from itagger_lib.ratings import queue
from itagger_lib.ratings.frames import machine_answer
from itagger_lib.ratings.recording import record_rating
from tests.deploy._pgroles import CLAIM, DEFINITION, NOW, RECORD

DENIED = pytest.raises(sa.exc.ProgrammingError, match="permission denied")


def _url(stack: dict, key: str) -> str:
    return stack["engines"][key].url.render_as_string(hide_password=False)


def _queue_key(study: int, rater: str) -> int:
    """The advisory lock key of a rater's queue (as itagger_claim_next computes it)."""
    return int.from_bytes(hashlib.sha256(f"{study}:{rater}".encode()).digest()[:8], "big", signed=True)


def _images(owner: sa.Engine, study: int, n: int, k: int = 1) -> None:
    """``n`` more images in ``study``, ``k`` open slots each."""
    with owner.begin() as conn:
        for i in range(n):
            img = conn.execute(
                sa.text(
                    "INSERT INTO images (sha256, ext, format, width, height, bytes, source_name,"
                    " source_path, ingested_at, ingested_by) VALUES (:s, 'jpg', 'JPEG', 1, 1, 1, 'b.jpg',"
                    " '/b.jpg', now(), 'owner') RETURNING id"
                ),
                {"s": f"{i + 1:064x}"},
            ).scalar_one()
            for slot in range(k):
                conn.execute(
                    sa.text(
                        "INSERT INTO assignments (study_id, image_id, slot, kind, status)"
                        " VALUES (:s, :i, :n, 'normal', 'open')"
                    ),
                    {"s": study, "i": img, "n": slot},
                )


@pytest.mark.postgres
def test_every_login_role_has_timeouts_and_taggers_take_no_advisory_lock(stack: dict) -> None:
    e, ids, u, owner = stack["engines"], stack["ids"], stack["users"], stack["owner"]
    for key, group in (("alice", "tagger"), ("res", "researcher"), ("adm", "admin")):
        with e[key].connect() as conn:
            for name, value in hubconfig.ROLE_TIMEOUTS[group].items():
                assert conn.exec_driver_sql(f"SHOW {name}").scalar_one() == value, (key, name)
    # a role made before these defaults existed gets them from `itagger secure-db`
    role = hubconfig.role_name(u["alice"] + "old")
    with owner.begin() as conn:
        conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
        conn.exec_driver_sql(f"GRANT itagger_tagger TO {role}")
    try:
        apply_row_level_security(owner)
        old = sa.create_engine(stack["engines"]["alice"].url.set(username=role))
        with old.connect() as conn:
            assert conn.exec_driver_sql("SHOW lock_timeout").scalar_one() == "5s"
        old.dispose()
    finally:
        with owner.begin() as conn:
            conn.exec_driver_sql(f"DROP ROLE {role}")
    # the attack: alice holds the lock that serialises bob's claims, for ever
    key = _queue_key(ids["blind"], u["bob"])
    for call in ("pg_advisory_lock(:k)", "pg_try_advisory_lock(:k)", "pg_advisory_xact_lock(:k)"):
        with DENIED, e["alice"].begin() as conn:
            conn.execute(sa.text(f"SELECT {call}"), {"k": key})
    with e["bob"].begin() as conn:  # bob's queue is not blocked
        assert conn.execute(CLAIM, {"study": ids["blind"], "rater": u["bob"]}).mappings().one()
    # and a lock held elsewhere (here by the owner) costs a claim lock_timeout, not for ever
    holder = owner.connect()
    try:
        holder.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _queue_key(ids["assisted"], u["bob"])})
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"), e["bob"].begin() as conn:
            conn.execute(CLAIM, {"study": ids["assisted"], "rater": u["bob"]})
        assert time.monotonic() - started < 15
    finally:
        holder.close()


@pytest.mark.postgres
def test_a_tagger_cannot_claim_every_slot_or_add_items(stack: dict) -> None:
    e, ids, u, owner = stack["engines"], stack["ids"], stack["users"], stack["owner"]
    study = ids["blind"]
    _images(owner, study, 3)
    for sql in (
        "UPDATE assignments SET rater = :r, status = 'assigned' WHERE status = 'open'",
        "INSERT INTO assignments (study_id, image_id, slot, rater, kind, status, position)"
        " SELECT study_id, image_id, -1, :r, 'normal', 'assigned', 1 FROM assignments",
        "INSERT INTO assignments (study_id, image_id, slot, rater, kind, status, position)"
        " SELECT study_id, image_id, -1, :r, 'gold', 'assigned', 1 FROM assignments",
    ):
        with DENIED, e["alice"].begin() as conn:
            conn.execute(sa.text(sql), {"r": u["alice"]})
    with e["alice"].begin() as conn:  # asking over and over gives the one item, not a new one each time
        got = {
            conn.execute(CLAIM, {"study": study, "rater": u["alice"]}).mappings().one()["id"]
            for _ in range(7)
        }
        # a gold or repeat item the design does not make due is not added
        for kind in ("gold", "repeat"):
            row = (
                conn.execute(
                    sa.text("SELECT * FROM itagger_claim_next(:s, :r, :k, :i)"),
                    {"s": study, "r": u["alice"], "k": kind, "i": ids["image"]},
                )
                .mappings()
                .one()
            )
            assert row["kind"] == "normal" and row["id"] in got
    assert len(got) == 1
    with owner.connect() as conn:
        mine = conn.execute(
            sa.text("SELECT count(*) FROM assignments WHERE study_id = :s AND rater = :r"),
            {"s": study, "r": u["alice"]},
        ).scalar_one()
    assert mine == 1
    # the other rater's queue goes on: next_assignment gives bob an image, not None
    bob = Workspace(database_url=_url(stack, "bob"), store=None, user=u["bob"], auto_migrate=False)
    try:
        item = queue.next_assignment(bob, study)
        assert item is not None and item.rater == u["bob"]
        record_rating(bob, item, "warmth", 4)
        assert queue.next_assignment(bob, study) is not None  # 4 images, k = 1: more to do
    finally:
        bob.close()


@pytest.mark.postgres
def test_no_impossible_value_is_stored_whoever_writes_and_means_recount_on_delete(stack: dict) -> None:
    e, ids, u, owner = stack["engines"], stack["ids"], stack["users"], stack["owner"]
    with DENIED, e["alice"].begin() as conn:  # the old attack: a direct INSERT of 999
        conn.execute(
            sa.text(
                "INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value, mode,"
                " is_repeat, is_gold, repeat_index, rated_at) VALUES (:i, 'warmth', :c, :r, 'human', 999,"
                " 'blind', false, false, 0, now())"
            ),
            {"i": ids["image"], "c": ids["codebook"], "r": u["alice"]},
        )
    with e["alice"].begin() as conn:
        item = conn.execute(CLAIM, {"study": ids["blind"], "rater": u["alice"]}).mappings().one()
    bad = [
        ("warmth", 999, None, "not allowed; give one of"),
        ("warmth", 2.5, None, "not allowed"),
        ("nope", 3, None, "has no attribute 'nope'"),
        ("depth", float("nan"), None, "not a finite number"),
        ("depth", float("inf"), None, "not a finite number"),
        ("depth", 2.0, None, "a number from 0"),
        ("style", 0, "baroque", "not allowed"),
        ("style", 1, "modern", "not allowed"),  # the label with another level's code
    ]
    for attr, v, t, why in bad:
        with pytest.raises(sa.exc.DBAPIError, match=why), e["alice"].begin() as conn:
            conn.execute(RECORD, {"item": item["id"], "attr": attr, "rater": u["alice"], "v": v, "t": t})
    outside = sa.text(  # a rating of an image outside any queue item: beyond the study's k
        "SELECT itagger_record_rating(NULL, :i, 'warmth', :c, :r, 3, NULL, NULL, NULL, NULL, true)"
    )
    with pytest.raises(sa.exc.ProgrammingError, match="items of their queue only"), e["alice"].begin() as c:
        c.execute(outside, {"i": ids["image"], "c": ids["codebook"], "r": u["alice"]})
    with e["res"].begin() as conn:  # staff may (imports, single answers)
        conn.execute(outside, {"i": ids["image"], "c": ids["codebook"], "r": "imported"})
        conn.exec_driver_sql("DELETE FROM ratings WHERE rater = 'imported'")
    with e["alice"].begin() as conn:  # the legitimate answers
        for attr, v, t in (("style", 0, "modern"), ("depth", 0.25, None), ("warmth", 3, None)):
            conn.execute(RECORD, {"item": item["id"], "attr": attr, "rater": u["alice"], "v": v, "t": t})
    # the library's own check says it first, as our error
    alice = Workspace(database_url=_url(stack, "alice"), store=None, user=u["alice"], auto_migrate=False)
    try:
        mine = queue.get_item(alice, item["id"])
        with pytest.raises(RatingError, match="999"):
            record_rating(alice, mine, "warmth", 999)
    finally:
        alice.close()
    # staff write directly, but NaN and infinities are refused by a CHECK whoever writes
    insert = sa.text(
        "INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value, mode, is_repeat,"
        " is_gold, repeat_index, rated_at) VALUES (:i, 'warmth', :c, 'imported', 'import', :v, 'blind',"
        " false, false, 0, now()) RETURNING id"
    )
    for key in ("res", "adm"):
        for v in ("NaN", "Infinity", "-Infinity"):
            with pytest.raises(sa.exc.IntegrityError, match="ck_ratings_value_finite"), e[key].begin() as c:
                c.execute(insert, {"i": ids["image"], "c": ids["codebook"], "v": float(v)})
    with e["res"].begin() as conn:
        five = conn.execute(insert, {"i": ids["image"], "c": ids["codebook"], "v": 5.0}).scalar_one()
    mean = sa.text("SELECT n, mean FROM rating_means WHERE image_id = :i AND attribute = 'warmth'")
    with owner.connect() as conn:
        assert conn.execute(mean, {"i": ids["image"]}).one() == (2, 4.0)
    with e["adm"].begin() as conn:  # deleting a rating recounts the image's statistics
        conn.execute(sa.text("DELETE FROM ratings WHERE id = :i"), {"i": five})
    with owner.connect() as conn:
        assert conn.execute(mean, {"i": ids["image"]}).one() == (1, 3.0)


@pytest.mark.postgres
def test_taggers_cannot_read_what_a_vlm_answered(stack: dict) -> None:
    """Blind is blind to the VLM's answers; an assisted study shows its answer to its raters."""
    e, ids, owner = stack["engines"], stack["ids"], stack["owner"]
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO vlm_calls (cache_key, provider, model, prompt_hash, prompt_version, image_id,"
                " image_sha256, parameters, repeat_index, status, reserved_usd, cost_usd, attempts,"
                " raw_response, rationale, created_at) VALUES ('k', 'stub', 'm', 'h', 'v1', :i, :s, '{}',"
                " 0, 'ok', 0.1, 0.1, 1, '{\"warmth\": 5}', 'warm light', now())"
            ),
            {"i": ids["image"], "s": "0" * 64},
        )
    for column in ("raw_response", "rationale", "*"):
        with DENIED, e["alice"].connect() as conn:
            conn.execute(sa.text(f"SELECT {column} FROM vlm_calls"))
    with e["alice"].connect() as conn:  # the rest of the ledger is not secret
        assert conn.execute(sa.text("SELECT status, cost_usd FROM vlm_calls")).one() == ("ok", 0.1)
    with e["res"].connect() as conn:
        assert conn.execute(sa.text("SELECT rationale FROM vlm_calls")).scalar_one() == "warm light"
    # the answer as a VLM rating: shown to a tagger only in an assisted study of their queue
    with owner.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value, mode,"
                " is_repeat, is_gold, repeat_index, rated_at) VALUES (:i, 'warmth', :c, 'vlm:stub/m@v1',"
                " 'vlm', 5, 'blind', false, false, 0, now())"
            ),
            {"i": ids["image"], "c": ids["codebook"]},
        )
    with e["alice"].connect() as conn:  # VLM ratings themselves stay hidden
        assert conn.execute(sa.text("SELECT count(*) FROM ratings WHERE source = 'vlm'")).scalar_one() == 0
    alice = Workspace(
        database_url=_url(stack, "alice"), store=None, user=stack["users"]["alice"], auto_migrate=False
    )
    try:
        assert machine_answer(alice, ids["image"], "warmth") is None  # no assisted item yet
        blind = queue.next_assignment(alice, ids["blind"])
        assert blind is not None and machine_answer(alice, ids["image"], "warmth") is None
        assisted = queue.next_assignment(alice, ids["assisted"])
        assert assisted is not None and machine_answer(alice, ids["image"], "warmth") == (5.0, None)
    finally:
        alice.close()


@pytest.mark.postgres
def test_taggers_cannot_lock_tables_or_rows(stack: dict) -> None:
    e = stack["engines"]
    for table in ("ratings", "assignments", "studies", "settings", "images"):
        for mode in (
            "ACCESS EXCLUSIVE",
            "EXCLUSIVE",
            "SHARE ROW EXCLUSIVE",
            "SHARE",
            "ROW EXCLUSIVE",
            "ROW SHARE",
        ):
            with DENIED, e["alice"].begin() as conn:
                conn.exec_driver_sql(f"LOCK TABLE {table} IN {mode} MODE")
        for clause in ("FOR UPDATE", "FOR SHARE", "FOR KEY SHARE"):
            with DENIED, e["alice"].begin() as conn:
                conn.exec_driver_sql(f"SELECT 1 FROM {table} {clause}")
    with e["res"].begin() as conn:  # a researcher's job includes locking, e.g. the VLM budget lock
        conn.exec_driver_sql("LOCK TABLE ratings IN SHARE MODE")


@pytest.mark.postgres
def test_researchers_cannot_rewrite_the_ledger_or_open_a_blind_study(stack: dict) -> None:
    e, ids, owner = stack["engines"], stack["ids"], stack["owner"]
    call = sa.text(
        "INSERT INTO vlm_calls (cache_key, provider, model, prompt_hash, prompt_version, image_sha256,"
        " parameters, repeat_index, status, reserved_usd, cost_usd, attempts, created_at)"
        " VALUES (:k, 'stub', 'm', 'h', 'v1', :s, '{}', 0, :st, 2.0, :c, 1, now()) RETURNING id"
    )
    with owner.begin() as conn:
        settled = conn.execute(call, {"k": "a", "s": "0" * 64, "st": "ok", "c": 1.5}).scalar_one()
    spent = sa.text(
        "SELECT sum(CASE WHEN status = 'reserved' THEN reserved_usd ELSE cost_usd END) FROM vlm_calls"
    )
    with e["res"].begin() as conn:
        assert (
            conn.execute(sa.text("UPDATE vlm_calls SET cost_usd = 0 WHERE id = :i"), {"i": settled}).rowcount
            == 0
        )
        assert conn.execute(sa.text("DELETE FROM vlm_calls WHERE id = :i"), {"i": settled}).rowcount == 0
    with DENIED, e["res"].begin() as conn:
        conn.exec_driver_sql("TRUNCATE vlm_calls")
    with pytest.raises(sa.exc.ProgrammingError, match="row-level security"), e["res"].begin() as conn:
        conn.execute(call, {"k": "b", "s": "0" * 64, "st": "ok", "c": 0.0})  # a settled call, forged
    with e["res"].begin() as conn:  # the job: reserve, settle an open call, release an unsent one
        sent = conn.execute(call, {"k": "c", "s": "0" * 64, "st": "reserved", "c": 0.0}).scalar_one()
        unsent = conn.execute(call, {"k": "d", "s": "0" * 64, "st": "reserved", "c": 0.0}).scalar_one()
        settle = sa.text("UPDATE vlm_calls SET status = 'ok', cost_usd = 0.5 WHERE id = :i")
        assert conn.execute(settle, {"i": sent}).rowcount == 1
        assert conn.execute(sa.text("DELETE FROM vlm_calls WHERE id = :i"), {"i": unsent}).rowcount == 1
        assert conn.execute(settle, {"i": sent}).rowcount == 0  # settled now: frozen
    with owner.connect() as conn:
        assert conn.execute(spent).scalar_one() == 2.0
    switch = sa.text("UPDATE studies SET mode = 'assisted' WHERE id = :s")
    with DENIED, e["res"].begin() as conn:
        conn.execute(switch, {"s": ids["blind"]})
    with e["res"].begin() as conn:  # the rest of a study's settings stay the researcher's
        conn.execute(
            sa.text("UPDATE studies SET design = '{\"gold_every\": 5}' WHERE id = :s"), {"s": ids["blind"]}
        )
    with e["adm"].begin() as conn:
        assert conn.execute(switch, {"s": ids["blind"]}).rowcount == 1


@pytest.mark.postgres
def test_permission_denials_reach_the_notebook_as_our_error(
    stack: dict, tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, u = stack["ids"], stack["users"]
    alice = Workspace(
        database_url=_url(stack, "alice"), store=tmp_path / "store", user=u["alice"], auto_migrate=False
    )
    try:
        with pytest.raises(PermissionDeniedError) as info:  # a store not marked read-only
            alice.ingest(sample_dir, progress=False)
        message = str(info.value)
        assert "insert into table runs" in message and "needs the researcher role" in message, message
        assert not isinstance(info.value, sa.exc.SQLAlchemyError)
        with pytest.raises(PermissionDeniedError, match="only as themselves"):
            queue.next_assignment(alice, ids["blind"], rater=u["bob"])
        with pytest.raises(PermissionDeniedError, match="needs the admin role"):
            alice.set_setting("vlm.budget_usd", 100)
    finally:
        alice.close()
    cli = subprocess.run(  # the shell: one line, our words, no traceback
        [sys.executable, "-m", "itagger_lib.cli", "--database-url", _url(stack, "alice"), "--store",
         str(tmp_path / "store"), "ingest", str(sample_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "ITAGGER_AUTO_MIGRATE": "0"},
    )  # fmt: skip
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "itagger ingest: error: permission denied: database role" in cli.stderr, cli.stderr
    assert "needs the researcher role" in cli.stderr and "Traceback" not in cli.stderr, cli.stderr
    monkeypatch.setenv("ITAGGER_STORE_READONLY", "1")  # as the hub sets it for taggers
    alice = Workspace(
        database_url=_url(stack, "alice"), store=tmp_path / "store", user=u["alice"], auto_migrate=False
    )
    try:
        with pytest.raises(StoreReadOnlyError, match="read-only for you"):
            alice.ingest(sample_dir, progress=False)
    finally:
        alice.close()
    researcher = Workspace(database_url=_url(stack, "res"), store=None, user=u["res"], auto_migrate=False)
    try:
        with pytest.raises(PermissionDeniedError, match=r"update table settings.*needs the admin role"):
            researcher.set_setting("vlm.budget_usd", 100)
    finally:
        researcher.close()


@pytest.mark.postgres
def test_concurrent_taggers_each_get_their_own_slots(stack: dict) -> None:
    """Eight taggers' claims at once through the function: never over k, never twice an image."""
    ids, u, owner = stack["ids"], stack["users"], stack["owner"]
    study = ids["assisted"]
    _images(owner, study, 6, k=2)
    errors: list[BaseException] = []

    def rate(key: str) -> None:
        try:
            ws = Workspace(database_url=_url(stack, key), store=None, user=u[key], auto_migrate=False)
            try:
                while (item := queue.next_assignment(ws, study)) is not None:
                    record_rating(ws, item, "warmth", 2)
            finally:
                ws.close()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=rate, args=(k,)) for k in ("alice", "bob") for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    with owner.connect() as conn:
        per_image = conn.execute(
            sa.text(
                "SELECT image_id, count(*), count(DISTINCT rater) FROM assignments"
                " WHERE study_id = :s AND status = 'done' GROUP BY image_id"
            ),
            {"s": study},
        ).all()
    # the fixture's image has 3 slots, the others 2; two raters: each image once per rater
    assert all(n == raters == 2 for _, n, raters in per_image), per_image
    assert len(per_image) == 7


@pytest.mark.postgres
def test_upgrade_from_0004_with_ratings_on_postgres(pg_url: str) -> None:
    from itagger_lib.db import make_engine
    from itagger_lib.db.migrate import current_revision, upgrade

    engine = make_engine(pg_url)
    try:
        upgrade(engine, "0004_vlm_batches")
        with engine.begin() as conn:
            img = conn.execute(
                sa.text(
                    "INSERT INTO images (sha256, ext, format, width, height, bytes, source_name, source_path,"
                    " ingested_at, ingested_by) VALUES (:s, 'jpg', 'JPEG', 1, 1, 1, 'a', '/a', now(), 'o')"
                    " RETURNING id"
                ),
                {"s": "0" * 64},
            ).scalar_one()
            cb = conn.execute(
                sa.text(
                    "INSERT INTO codebooks (name, version, content_hash, source_text, definition, created_at,"
                    " created_by) VALUES ('cb', '1', 'h', '', :d, now(), 'o') RETURNING id"
                ),
                {"d": json.dumps(DEFINITION)},
            ).scalar_one()
            for rater, v in (("a", 2.0), ("b", 4.0), ("c", float("nan"))):
                conn.execute(
                    sa.text(
                        "INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value, mode,"
                        " is_repeat, is_gold, repeat_index, rated_at) VALUES (:i, 'warmth', :c, :r, 'human',"
                        " :v, 'blind', false, false, 0, :t)"
                    ),
                    {"i": img, "c": cb, "r": rater, "v": v, "t": NOW},
                )
            assert conn.exec_driver_sql("SELECT mean FROM rating_means").scalar_one() != 3.0  # NaN
        apply_row_level_security(engine)  # a database secured before: the new functions come later
        upgrade(engine, "0005_roles")
        assert current_revision(engine) == "0005_roles"
        with engine.connect() as conn:
            rows = conn.exec_driver_sql("SELECT rater, value FROM ratings ORDER BY rater").all()
            assert rows == [("a", 2.0), ("b", 4.0), ("c", None)]  # kept, as missing
            assert conn.exec_driver_sql("SELECT n, mean FROM rating_means").one() == (2, 3.0)
        apply_row_level_security(engine)
        apply_row_level_security(engine)  # `itagger secure-db` on every `up`: idempotent
        with engine.connect() as conn:
            for function in (
                "itagger_claim_next(integer, text, text, integer)",
                "itagger_set_status(integer, text)",
            ):
                for role, allowed in (("itagger_tagger", True), ("public", False)):
                    granted = conn.execute(
                        sa.text("SELECT has_function_privilege(:r, :f, 'EXECUTE')"),
                        {"r": role, "f": function},
                    ).scalar_one()
                    assert granted is allowed, (role, function)
        with pytest.raises(RatingError, match="finite"), engine.begin() as conn:
            conn.exec_driver_sql("UPDATE ratings SET value = 'NaN' WHERE rater = 'a'")
    finally:
        engine.dispose()


def test_sqlite_refuses_infinite_values_too(tmp_path: Path) -> None:
    """SQLite stores NaN as NULL; the 0005 triggers refuse infinities (one user, any writer)."""
    from itagger_lib.db import make_engine
    from itagger_lib.db.migrate import downgrade, upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'itagger.db'}")
    try:
        upgrade(engine, "0004_vlm_batches")
        insert = sa.text(
            "INSERT INTO ratings (image_id, attribute, codebook_id, rater, source, value, mode, is_repeat,"
            " is_gold, repeat_index, rated_at) VALUES (1, 'warmth', 1, :r, 'human', :v, 'blind', 0, 0, 0,"
            " '2026-01-01')"
        )
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO images (id, sha256, ext, format, width, height, bytes, source_name,"
                " source_path, ingested_at, ingested_by)"
                " VALUES (1, 'x', 'jpg', 'JPEG', 1, 1, 1, 'a', '/a', '2026-01-01', 'o')"
            )
            conn.exec_driver_sql(
                "INSERT INTO codebooks (id, name, version, content_hash, source_text, definition, created_at,"
                " created_by) VALUES (1, 'cb', '1', 'h', '', '{}', '2026-01-01', 'o')"
            )
            conn.execute(insert, {"r": "a", "v": 2.0})
            conn.execute(insert, {"r": "b", "v": float("inf")})
        upgrade(engine)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT value FROM ratings ORDER BY rater").scalars().all() == [
                2.0,
                None,
            ]
        for v in (float("inf"), float("-inf")):
            with pytest.raises(RatingError, match="finite"), engine.begin() as conn:
                conn.execute(insert, {"r": "c", "v": v})
            with pytest.raises(RatingError, match="finite"), engine.begin() as conn:
                conn.execute(sa.text("UPDATE ratings SET value = :v WHERE rater = 'a'"), {"v": v})
        with engine.begin() as conn:
            conn.execute(insert, {"r": "d", "v": 6.0})
        downgrade(engine, "0004_vlm_batches")
    finally:
        engine.dispose()
