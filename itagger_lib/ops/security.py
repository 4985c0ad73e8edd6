"""Least privilege on a Postgres workbench database: group roles, grants and row-level security.

Roles (cluster-wide, ``NOLOGIN``; each hub user gets a login role that is a member of one):

``itagger_tagger``
    Reads the catalogue (images, studies, assignments, codebooks, ...). Writes only
    ``ratings``, and only rows whose ``rater`` is themselves and ``source = 'human'``, and
    ``assignments`` (the tagging queue: claim an open slot or change an own item, always
    ending with ``rater`` = themselves); never deletes. Reads their own ratings always, and
    other raters' ratings **only when those ratings belong to a study whose mode is
    ``assisted``**. Ratings of blind studies and ratings without a study stay hidden (the
    conservative choice: a tagger can never see a colleague's rating unless a researcher
    explicitly opened the study as assisted).
``itagger_researcher``
    Reads everything; writes everything except ``codebooks``, ``settings`` and
    ``vlm_prices`` (codebooks, VLM settings and budgets belong to admins). To run VLM
    ratings a researcher takes the budget lock: a row lock on the one ``settings`` row
    ``vlm.ledger_lock`` (which this module creates), allowed by a policy on that row alone.
``itagger_admin``
    All privileges on all workbench tables.

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

from itagger_lib.errors import ConfigError
from itagger_lib.vlm.ledger import LOCK_KEY

TAGGER, RESEARCHER, ADMIN = "itagger_tagger", "itagger_researcher", "itagger_admin"
ADMIN_ONLY_TABLES: tuple[str, ...] = ("codebooks", "settings", "vlm_prices")


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
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {TAGGER}, {RESEARCHER}, {ADMIN}",
        f"GRANT INSERT, UPDATE ON ratings TO {TAGGER}",
        # the tagging queue: claim an open slot, mark own items done/skipped, add own gold/repeat
        f"GRANT INSERT, UPDATE ON assignments TO {TAGGER}",
        f"GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {RESEARCHER}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {', '.join(ADMIN_ONLY_TABLES)} FROM {RESEARCHER}",
        f"REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON itagger_role_users FROM {RESEARCHER}",
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
        "ALTER TABLE assignments ENABLE ROW LEVEL SECURITY",
        "DROP POLICY IF EXISTS itagger_staff_all ON assignments",
        "DROP POLICY IF EXISTS itagger_tagger_select ON assignments",
        "DROP POLICY IF EXISTS itagger_tagger_insert ON assignments",
        "DROP POLICY IF EXISTS itagger_tagger_update ON assignments",
        f"CREATE POLICY itagger_staff_all ON assignments FOR ALL TO {RESEARCHER}, {ADMIN} "
        "USING (true) WITH CHECK (true)",
        f"CREATE POLICY itagger_tagger_select ON assignments FOR SELECT TO {TAGGER} USING (true)",
        f"""CREATE POLICY itagger_tagger_insert ON assignments FOR INSERT TO {TAGGER}
              WITH CHECK (rater = itagger_rater_of(current_user))""",
        f"""CREATE POLICY itagger_tagger_update ON assignments FOR UPDATE TO {TAGGER}
              USING (rater IS NULL OR rater = itagger_rater_of(current_user))
              WITH CHECK (rater = itagger_rater_of(current_user))""",
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
        f"""CREATE POLICY itagger_tagger_insert ON ratings FOR INSERT TO {TAGGER}
              WITH CHECK (rater = itagger_rater_of(current_user) AND source = 'human')""",
        f"""CREATE POLICY itagger_tagger_update ON ratings FOR UPDATE TO {TAGGER}
              USING (rater = itagger_rater_of(current_user))
              WITH CHECK (rater = itagger_rater_of(current_user) AND source = 'human')""",
    ]
    return stmts + comparison_security_sql()


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
