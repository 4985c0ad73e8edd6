"""Least privilege on a Postgres workbench database: group roles, grants and row-level security.

Roles (cluster-wide, ``NOLOGIN``; each hub user gets a login role that is a member of one):

``itagger_tagger``
    Reads the catalogue (images, studies, assignments, codebooks, ...), but not what a VLM
    answered (``vlm_calls.raw_response`` and ``rationale``: column grants). Writes **no
    table**: claims queue items, marks them done or skipped and records or changes their
    own answers only through the ``SECURITY DEFINER`` functions of migration
    ``0005_roles`` (:data:`CHECKED_FUNCTIONS`), which act only for the rater mapped to the
    login role and check every answer against the codebook and the study. Without a write
    grant a tagger can take no row lock and no table lock beyond ``ACCESS SHARE``; advisory
    locks are taken away from every non-superuser (:data:`ADVISORY_LOCKS`), so no tagger
    can stall another rater's queue or the ``rating_means`` recount. Reads their own
    ratings always, and other raters' ratings **only when those ratings belong to a study
    whose mode is ``assisted``**. Ratings of blind studies and ratings without a study stay
    hidden (the conservative choice: a tagger can never see a colleague's rating unless a
    researcher explicitly opened the study as assisted).
``itagger_researcher``
    Reads everything; writes everything except ``codebooks``, ``settings`` and
    ``vlm_prices`` (codebooks, VLM settings and budgets belong to admins), a study's
    ``mode`` (a blind study stays blind unless an admin opens it) and settled ``vlm_calls``
    (the ledger the budget is summed from: researchers add reservations and settle or
    release their open ones; no ``TRUNCATE``). To run VLM ratings a researcher takes the
    budget lock: a row lock on the one ``settings`` row ``vlm.ledger_lock`` (which this
    module creates), allowed by a policy on that row alone.
``itagger_admin``
    All privileges on all workbench tables.

Every login member of a group gets its group's session timeouts
(:data:`~itagger_lib.ops.hubconfig.ROLE_TIMEOUTS`: ``lock_timeout``, ``statement_timeout``,
``idle_in_transaction_session_timeout``); the hub sets them when it creates the role, and
this module on every role that exists.

"Themselves" is the hub user name: login roles are named ``itu_<slug>_<hash>``
(:func:`itagger_lib.ops.hubconfig.role_name`) and mapped to the user name in
``itagger_role_users``; :sql:`itagger_rater_of(current_user)` returns the mapped name (or
``current_user`` for an unmapped role). The table owner (the migration role) is not
subject to RLS. New tables need grants, so ``itagger db upgrade`` re-applies all of this on
a database where it was applied before (:func:`is_secured`); ``itagger secure-db`` applies
it by hand.
"""

from __future__ import annotations

import sqlalchemy as sa

from itagger_lib.db.models import VLMCall
from itagger_lib.errors import ConfigError
from itagger_lib.ops.hubconfig import GROUP_ROLES, ROLE_TIMEOUTS
from itagger_lib.vlm.ledger import LOCK_KEY

TAGGER, RESEARCHER, ADMIN = "itagger_tagger", "itagger_researcher", "itagger_admin"
ADMIN_ONLY_TABLES: tuple[str, ...] = ("codebooks", "settings", "vlm_prices")
#: The checked functions of migration 0005_roles: the only way taggers write (and see an
#: assisted study's VLM answer).
CHECKED_FUNCTIONS: tuple[str, ...] = (
    "itagger_claim_next(integer, text, text, integer)",
    "itagger_set_status(integer, text)",
    "itagger_record_rating(integer, integer, text, integer, text, float8, text, text, integer, text, "
    "boolean)",
    "itagger_machine_answer(integer, text)",
    # migration 0006_studies: the lock a rater's first request takes to write their schedule
    "itagger_lock_comparison_study(integer)",
)
#: What a VLM said, which a blind study must not show a tagger.
VLM_ANSWER_COLUMNS: tuple[str, ...] = ("raw_response", "rationale")
#: Functions that take advisory locks (the key space the queue and rating_means use).
ADVISORY_LOCKS: tuple[str, ...] = tuple(
    f"pg_{try_}advisory_{xact}lock{shared}({args})"
    for try_ in ("", "try_")
    for xact in ("", "xact_")
    for shared in ("", "_shared")
    for args in ("bigint", "integer, integer")
)


def _function_grant_sql(signature: str) -> str:
    """EXECUTE on one checked write function for the group roles only (skipped on a
    database not yet at migration 0005: `itagger db upgrade` re-applies this)."""
    return (
        f"DO $$ BEGIN IF to_regprocedure('{signature}') IS NOT NULL THEN "
        f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC; "
        f"GRANT EXECUTE ON FUNCTION {signature} TO {TAGGER}, {RESEARCHER}, {ADMIN}; END IF; END $$"
    )


def _tagger_vlm_columns() -> list[str]:
    return [c.name for c in VLMCall.__table__.columns if c.name not in VLM_ANSWER_COLUMNS]


def _timeouts_sql() -> str:
    """Set every login member of a group role to its group's session timeouts."""
    body = []
    for group, settings in ROLE_TIMEOUTS.items():
        sets = " ".join(
            f"EXECUTE 'ALTER ROLE ' || quote_ident(r.rolname) || ' SET {name} = ''{value}''';"
            for name, value in settings.items()
        )
        body.append(
            "FOR r IN SELECT m.rolname FROM pg_roles m JOIN pg_auth_members am ON am.member = m.oid "
            f"JOIN pg_roles g ON g.oid = am.roleid WHERE g.rolname = '{GROUP_ROLES[group]}' "
            f"AND m.rolcanlogin AND NOT m.rolsuper LOOP {sets} END LOOP;"
        )
    return (
        "DO $$ DECLARE r record; BEGIN IF (SELECT rolsuper OR rolcreaterole FROM pg_roles "
        "WHERE rolname = current_user) THEN " + " ".join(body) + " END IF; END $$"
    )


def _advisory_sql() -> str:
    """Take advisory locks away from everyone but superusers (a superuser owner only: the
    functions belong to the bootstrap superuser)."""
    revokes = " ".join(f"REVOKE EXECUTE ON FUNCTION {f} FROM PUBLIC;" for f in ADVISORY_LOCKS)
    return (
        "DO $$ BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN "
        f"{revokes} END IF; END $$"
    )


def apply_row_level_security_sql() -> list[str]:
    """The idempotent SQL statements of :func:`apply_row_level_security`, in order."""
    stmts: list[str] = []
    for role in (TAGGER, RESEARCHER, ADMIN):
        stmts.append(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
        )
    stmts += [
        "CREATE TABLE IF NOT EXISTS itagger_role_users (role name PRIMARY KEY, username text NOT NULL)",
        "REVOKE ALL ON itagger_role_users FROM PUBLIC",
        # SECURITY DEFINER runs as the owner, so the caller's role is passed in explicitly
        """CREATE OR REPLACE FUNCTION itagger_rater_of(r name) RETURNS text
           LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
             SELECT COALESCE((SELECT username FROM itagger_role_users WHERE role = r), r::text) $$""",
        "REVOKE ALL ON FUNCTION itagger_rater_of(name) FROM PUBLIC",
        f"GRANT EXECUTE ON FUNCTION itagger_rater_of(name) TO {TAGGER}, {RESEARCHER}, {ADMIN}",
        f"GRANT USAGE ON SCHEMA public TO {TAGGER}, {RESEARCHER}, {ADMIN}",
        # start from nothing, then grant
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {TAGGER}, {RESEARCHER}, {ADMIN}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {TAGGER}, {RESEARCHER}, {ADMIN}",
        f"REVOKE SELECT ON itagger_role_users FROM {TAGGER}, {RESEARCHER}, {ADMIN}",
        # per-image means pool every rater's answers: hidden from taggers like the ratings
        f"REVOKE SELECT ON rating_means FROM {TAGGER}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {TAGGER}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {RESEARCHER}, {ADMIN}",
        # taggers write through the checked functions only (claim, status, answer): no write
        # grant on any table, hence no row locks and no LOCK TABLE beyond ACCESS SHARE
        *(_function_grant_sql(f) for f in CHECKED_FUNCTIONS),
        # what a VLM answered stays hidden from taggers (a blind study is blind to it)
        f"REVOKE SELECT ON vlm_calls FROM {TAGGER}",
        f"GRANT SELECT ({', '.join(_tagger_vlm_columns())}) ON vlm_calls TO {TAGGER}",
        f"GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {RESEARCHER}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {', '.join(ADMIN_ONLY_TABLES)} FROM {RESEARCHER}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON itagger_role_users FROM {RESEARCHER}",
        # a blind study stays blind: only admins change a study's mode
        f"REVOKE UPDATE ON studies FROM {RESEARCHER}",
        f"GRANT UPDATE (name, codebook_id, raters_per_image, seed, design, created_at, created_by) ON studies"
        f" TO {RESEARCHER}",
        # the ledger the budget is summed from: researchers add and settle open reservations
        # (and release unsent ones); settled calls are an admin's alone
        f"REVOKE TRUNCATE ON vlm_calls FROM {RESEARCHER}",
        f"GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {ADMIN}",
        f"REVOKE INSERT, UPDATE, DELETE ON itagger_role_users FROM {ADMIN}",
        # the VLM budget lock: SELECT ... FOR UPDATE of one settings row, which needs UPDATE;
        # researchers may lock (and touch the time of) that row and no other
        f"""INSERT INTO settings (key, value, updated_at, updated_by)
              VALUES ('{LOCK_KEY}', '0', now(), 'itagger') ON CONFLICT (key) DO NOTHING""",
        f"GRANT UPDATE (updated_at) ON settings TO {RESEARCHER}",
        "ALTER TABLE settings ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS itagger_read ON settings",
        "DROP POLICY IF EXISTS itagger_admin_all ON settings",
        "DROP POLICY IF EXISTS itagger_researcher_lock ON settings",
        f"CREATE POLICY itagger_read ON settings FOR SELECT TO {TAGGER}, {RESEARCHER}, {ADMIN} USING (true)",
        f"CREATE POLICY itagger_admin_all ON settings FOR ALL TO {ADMIN} USING (true) WITH CHECK (true)",
        f"""CREATE POLICY itagger_researcher_lock ON settings FOR UPDATE TO {RESEARCHER}
              USING (key = '{LOCK_KEY}') WITH CHECK (key = '{LOCK_KEY}')""",
        "ALTER TABLE vlm_calls ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS itagger_read ON vlm_calls",
        "DROP POLICY IF EXISTS itagger_admin_all ON vlm_calls",
        "DROP POLICY IF EXISTS itagger_researcher_reserve ON vlm_calls",
        "DROP POLICY IF EXISTS itagger_researcher_settle ON vlm_calls",
        "DROP POLICY IF EXISTS itagger_researcher_release ON vlm_calls",
        f"CREATE POLICY itagger_read ON vlm_calls FOR SELECT TO {TAGGER}, {RESEARCHER}, {ADMIN} USING (true)",
        f"CREATE POLICY itagger_admin_all ON vlm_calls FOR ALL TO {ADMIN} USING (true) WITH CHECK (true)",
        f"""CREATE POLICY itagger_researcher_reserve ON vlm_calls FOR INSERT TO {RESEARCHER}
              WITH CHECK (status = 'reserved')""",
        f"""CREATE POLICY itagger_researcher_settle ON vlm_calls FOR UPDATE TO {RESEARCHER}
              USING (status = 'reserved') WITH CHECK (true)""",
        f"""CREATE POLICY itagger_researcher_release ON vlm_calls FOR DELETE TO {RESEARCHER}
              USING (status = 'reserved')""",
        "ALTER TABLE assignments ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS itagger_staff_all ON assignments",
        "DROP POLICY IF EXISTS itagger_tagger_select ON assignments",
        "DROP POLICY IF EXISTS itagger_tagger_insert ON assignments",
        "DROP POLICY IF EXISTS itagger_tagger_update ON assignments",
        f"CREATE POLICY itagger_staff_all ON assignments FOR ALL TO {RESEARCHER}, {ADMIN} "
        "USING (true) WITH CHECK (true)",
        f"CREATE POLICY itagger_tagger_select ON assignments FOR SELECT TO {TAGGER} USING (true)",
        "ALTER TABLE ratings ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS itagger_staff_all ON ratings",
        "DROP POLICY IF EXISTS itagger_tagger_select ON ratings",
        "DROP POLICY IF EXISTS itagger_tagger_insert ON ratings",
        "DROP POLICY IF EXISTS itagger_tagger_update ON ratings",
        f"CREATE POLICY itagger_staff_all ON ratings FOR ALL TO {RESEARCHER}, {ADMIN} "
        "USING (true) WITH CHECK (true)",
        f"""CREATE POLICY itagger_tagger_select ON ratings FOR SELECT TO {TAGGER} USING (
              rater = itagger_rater_of(current_user)
              OR EXISTS (SELECT 1 FROM studies s WHERE s.id = ratings.study_id AND s.mode = 'assisted'))""",
        _advisory_sql(),
        _timeouts_sql(),
    ]
    comparisons = _when_tables_exist(("comparison_trials", "comparison_choices"), comparison_security_sql())
    return [*stmts, comparisons]


def _when_tables_exist(tables: tuple[str, ...], stmts: list[str]) -> str:
    """``stmts`` as one block that runs only when ``tables`` exist (skipped on a database not
    yet at the migration that makes them: `itagger db upgrade` re-applies this)."""
    present = " AND ".join(f"to_regclass('{t}') IS NOT NULL" for t in tables)
    body = " ".join(f"EXECUTE $stmt${s}$stmt$;" for s in stmts)
    return f"DO $when$ BEGIN IF {present} THEN {body} END IF; END $when$"


def comparison_security_sql() -> list[str]:
    """Grants and policies of the comparative studies' tables (``itagger_lib.comparisons``).

    A tagger writes their own schedule and judgements: ``comparison_trials`` rows whose
    ``rater`` is themselves (insert, update; every row is readable, as the queue numbers
    raters by counting them, and a trial holds no judgement) and ``comparison_choices`` rows
    whose ``rater`` is themselves with ``source = 'human'``. Other raters' choices are
    readable only in assisted studies, as for ratings. Researchers and admins: everything.
    """
    me = "itagger_rater_of(current_user)"
    stmts = [
        f"GRANT INSERT, UPDATE ON comparison_trials, comparison_choices TO {TAGGER}",
        f"GRANT USAGE ON SEQUENCE comparison_trials_id_seq, comparison_choices_id_seq TO {TAGGER}",
    ]
    for table in ("comparison_trials", "comparison_choices"):
        stmts += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
            *(
                f"DROP POLICY IF EXISTS {name} ON {table}"
                for name in (
                    "itagger_staff_all",
                    "itagger_tagger_select",
                    "itagger_tagger_insert",
                    "itagger_tagger_update",
                )
            ),
            f"CREATE POLICY itagger_staff_all ON {table} FOR ALL TO {RESEARCHER}, {ADMIN} "
            "USING (true) WITH CHECK (true)",
        ]
    stmts += [
        f"CREATE POLICY itagger_tagger_select ON comparison_trials FOR SELECT TO {TAGGER} USING (true)",
        f"""CREATE POLICY itagger_tagger_insert ON comparison_trials FOR INSERT TO {TAGGER}
              WITH CHECK (rater = {me})""",
        f"""CREATE POLICY itagger_tagger_update ON comparison_trials FOR UPDATE TO {TAGGER}
              USING (rater = {me}) WITH CHECK (rater = {me})""",
        f"""CREATE POLICY itagger_tagger_select ON comparison_choices FOR SELECT TO {TAGGER} USING (
              rater = {me}
              OR EXISTS (SELECT 1 FROM studies s
                         WHERE s.id = comparison_choices.study_id AND s.mode = 'assisted'))""",
        f"""CREATE POLICY itagger_tagger_insert ON comparison_choices FOR INSERT TO {TAGGER}
              WITH CHECK (rater = {me} AND source = 'human')""",
        f"""CREATE POLICY itagger_tagger_update ON comparison_choices FOR UPDATE TO {TAGGER}
              USING (rater = {me}) WITH CHECK (rater = {me} AND source = 'human')""",
    ]
    return stmts


def apply_row_level_security(engine: sa.Engine) -> None:
    """Create the group roles, grants and policies on the workbench database (idempotent).

    Parameters
    ----------
    engine
        Engine on the workbench database, connected as its owner (the role that ran the
        migrations). Tables must exist (run ``itagger db upgrade`` first).

    Raises
    ------
    ConfigError
        When the database is not Postgres (SQLite has no roles: single-user only).
    """
    if engine.dialect.name != "postgresql":
        raise ConfigError(
            f"row-level security needs Postgres, not {engine.dialect.name}; "
            "a group deployment must set ITAGGER_DATABASE_URL=postgresql+psycopg://..."
        )
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(74201)"))
        for stmt in apply_row_level_security_sql():
            conn.exec_driver_sql(stmt)


def is_secured(engine: sa.Engine) -> bool:
    """Whether :func:`apply_row_level_security` was applied to this database before.

    True when the database is Postgres and holds the ``itagger_role_users`` mapping table,
    which only that function creates.
    """
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT to_regclass('public.itagger_role_users') IS NOT NULL"))
        return bool(found.scalar_one())


def map_role_sql(role: str, username: str) -> str:
    """SQL mapping login ``role`` to hub user ``username`` (run as the owner)."""
    r = role.replace("'", "''")
    u = username.replace("'", "''")
    return (
        f"INSERT INTO itagger_role_users (role, username) VALUES ('{r}', '{u}') "
        "ON CONFLICT (role) DO UPDATE SET username = EXCLUDED.username"
    )
