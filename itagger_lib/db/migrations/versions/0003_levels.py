"""statistics by level of measurement in rating_means; one name per VLM rater; primary VLM runs

Revision ID: 0003_levels
Revises: 0001
Create Date: 2026-12-10 00:00:00

* ``rating_means`` gains ``median``, ``mode``, ``modes`` and ``mode_share`` beside ``n``,
  ``total`` and ``mean`` (the explorer shows the statistic of each attribute's level of
  measurement), indexed like ``mean``. On PostgreSQL the trigger recounts the image and
  attribute under a per-key advisory lock (``itagger_rating_statistics``); on SQLite it
  keeps 0001's deltas and recomputes median and mode in SQL. It now counts first
  presentations only (repeated items are test-retest, as in the per-image table and
  agreement), so the table is recounted and the new columns filled in.
* VLM ratings are renamed to the one rater name used everywhere,
  ``vlm:<provider>/<model>@<prompt version>`` (the prompt version from the call).
* ``runs.is_primary`` marks the VLM run chosen as its model's primary run.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_levels"
down_revision = "0001"
branch_labels = None
depends_on = None

# A counted rating: a person's (or an import's) first presentation with a value, as in the
# per-image table; 0001 counted repeated items too.
_COUNTED = (
    "{row}.source IN ('human', 'import') AND {row}.value IS NOT NULL AND NOT {row}.is_repeat "
    "AND {row}.repeat_index = 0"
)
_COUNTED_0001 = "{row}.source IN ('human', 'import') AND {row}.value IS NOT NULL"
_WATCHED = "image_id, attribute, source, value, is_repeat, repeat_index"
_WATCHED_0001 = "image_id, attribute, source, value"


def _same(alias: str) -> str:
    """``alias`` is a counted rating of the rating_means row being updated."""
    return (
        f"{alias}.image_id = rating_means.image_id AND {alias}.attribute = rating_means.attribute AND "
        + _COUNTED.format(row=alias)
    )


# The n-th smallest counted value (1-based) is the least value with at least n values <= it.
_NTH = (
    "(SELECT min(a.value) FROM ratings a WHERE "
    + _same("a")
    + " AND (SELECT count(*) FROM ratings b WHERE "
    + _same("b")
    + " AND b.value <= a.value) >= {position})"
)
_TOP = (
    "(SELECT count(*) FROM ratings t WHERE "
    + _same("t")
    + " GROUP BY t.value ORDER BY count(*) DESC LIMIT 1)"
)
# SQLite (no arrays, no WITH in a trigger): the statistics of one row in SQL. SET expressions
# see the row as it was, so ``mode`` (which needs the new ``modes``) is a second statement.
_SUMMARY = (
    "UPDATE rating_means SET "
    "median = ("
    + _NTH.format(position="(rating_means.n + 1) / 2")
    + " + "
    + _NTH.format(position="rating_means.n / 2 + 1")
    + ") / 2.0, "
    "mode_share = 1.0 * " + _TOP + " / rating_means.n, "
    "modes = (SELECT count(*) FROM (SELECT count(*) AS k FROM ratings g WHERE "
    + _same("g")
    + " GROUP BY g.value) c WHERE c.k = "
    + _TOP
    + ") {where}"
)
_MODE = (
    "UPDATE rating_means SET mode = CASE WHEN modes = 1 THEN (SELECT t.value FROM ratings t WHERE "
    + _same("t")
    + " GROUP BY t.value ORDER BY count(*) DESC LIMIT 1) END {where}"
)


# Every row at once (filling the new columns in): positions and counts by window functions.
_FILL = (
    "WITH v AS (SELECT r.image_id, r.attribute, r.value, "
    "row_number() OVER (PARTITION BY r.image_id, r.attribute ORDER BY r.value) AS pos, "
    "count(*) OVER (PARTITION BY r.image_id, r.attribute) AS n FROM ratings r WHERE "
    + _COUNTED.format(row="r")
    + "), md AS (SELECT image_id, attribute, avg(value) AS median FROM v "
    "WHERE pos = (n + 1) / 2 OR pos = n / 2 + 1 GROUP BY image_id, attribute), "
    "c AS (SELECT image_id, attribute, value, count(*) AS k FROM v GROUP BY image_id, attribute, value), "
    "t AS (SELECT image_id, attribute, max(k) AS top FROM c GROUP BY image_id, attribute), "
    "mo AS (SELECT c.image_id, c.attribute, count(*) AS modes, min(c.value) AS modal, max(t.top) AS top "
    "FROM c JOIN t ON c.image_id = t.image_id AND c.attribute = t.attribute AND c.k = t.top "
    "GROUP BY c.image_id, c.attribute) "
    "UPDATE rating_means SET median = md.median, modes = mo.modes, "
    "mode = CASE WHEN mo.modes = 1 THEN mo.modal END, mode_share = 1.0 * mo.top / rating_means.n "
    "FROM md JOIN mo ON md.image_id = mo.image_id AND md.attribute = mo.attribute "
    "WHERE rating_means.image_id = md.image_id AND rating_means.attribute = md.attribute"
)


def _refresh(row: str) -> str:
    where = f"WHERE image_id = {row}.image_id AND attribute = {row}.attribute"
    return f"{_SUMMARY.format(where=where)}; {_MODE.format(where=where)};"


# The delta updates of 0001 (count, sum, mean), which also lock the row for concurrent writers.
_SQLITE_ADD = (
    "INSERT INTO rating_means (image_id, attribute, n, total, mean) "
    "SELECT NEW.image_id, NEW.attribute, 1, NEW.value, NEW.value WHERE {counted_new} "
    "ON CONFLICT (image_id, attribute) DO UPDATE SET n = n + 1, total = total + excluded.total, "
    "mean = (total + excluded.total) / (n + 1);"
)
_SQLITE_REMOVE = (
    "UPDATE rating_means SET n = n - 1, total = total - OLD.value, "
    "mean = CASE WHEN n > 1 THEN (total - OLD.value) / (n - 1) END "
    "WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND {counted_old}; "
    "DELETE FROM rating_means WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND n <= 0;"
)
# Postgres: the statistics of one image and attribute recounted under a per-key advisory
# lock (so a writer sees every writer that committed before it), from one read of the
# counted values into an array, and written with one upsert. Three times the cost per rating
# written of 0001's delta updates, a third of recounting with the SQL the SQLite triggers use.
_PG_STATISTICS = """CREATE OR REPLACE FUNCTION itagger_rating_statistics(img integer, attr text) RETURNS void
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     vals float8[];
     k integer;
     sum_values float8 := 0;
     run integer := 0;
     top integer := 0;
     ties integer := 0;
     modal float8;
   BEGIN
     PERFORM pg_advisory_xact_lock(img, hashtext(attr));
     SELECT array_agg(r.value ORDER BY r.value) INTO vals FROM ratings r
      WHERE r.image_id = img AND r.attribute = attr AND {counted_r};
     k := coalesce(array_length(vals, 1), 0);
     IF k = 0 THEN
       DELETE FROM rating_means WHERE image_id = img AND attribute = attr;
       RETURN;
     END IF;
     FOR i IN 1..k LOOP
       sum_values := sum_values + vals[i];
       IF i > 1 AND vals[i] = vals[i - 1] THEN run := run + 1; ELSE run := 1; END IF;
       IF run > top THEN top := run; ties := 1; modal := vals[i];
       ELSIF run = top THEN ties := ties + 1;
       END IF;
     END LOOP;
     INSERT INTO rating_means AS m (image_id, attribute, n, total, mean, median, mode, modes, mode_share)
     VALUES (img, attr, k, sum_values, sum_values / k, (vals[(k + 1) / 2] + vals[k / 2 + 1]) / 2,
             CASE WHEN ties = 1 THEN modal END, ties, top::float8 / k)
     ON CONFLICT (image_id, attribute) DO UPDATE
       SET n = EXCLUDED.n, total = EXCLUDED.total, mean = EXCLUDED.mean, median = EXCLUDED.median,
           mode = EXCLUDED.mode, modes = EXCLUDED.modes, mode_share = EXCLUDED.mode_share;
   END $$"""
# 0001's trigger function (delta updates of n, total, mean), restored by the downgrade.
_PG_FUNCTION_0001 = """CREATE OR REPLACE FUNCTION itagger_rating_means() RETURNS trigger
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   BEGIN
     IF TG_OP IN ('UPDATE', 'DELETE') AND {counted_old} THEN
       UPDATE rating_means SET n = n - 1, total = total - OLD.value,
              mean = CASE WHEN n > 1 THEN (total - OLD.value) / (n - 1) END
        WHERE image_id = OLD.image_id AND attribute = OLD.attribute;
       DELETE FROM rating_means
        WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND n <= 0;
     END IF;
     IF TG_OP IN ('INSERT', 'UPDATE') AND {counted_new} THEN
       INSERT INTO rating_means AS m (image_id, attribute, n, total, mean)
       VALUES (NEW.image_id, NEW.attribute, 1, NEW.value, NEW.value)
       ON CONFLICT (image_id, attribute) DO UPDATE
         SET n = m.n + 1, total = m.total + EXCLUDED.total,
             mean = (m.total + EXCLUDED.total) / (m.n + 1);
     END IF;
     RETURN NULL;
   END $$"""
_PG_FUNCTION = """CREATE OR REPLACE FUNCTION itagger_rating_means() RETURNS trigger
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   DECLARE
     old_counted boolean := TG_OP IN ('UPDATE', 'DELETE') AND coalesce({counted_old}, false);
     new_counted boolean := TG_OP IN ('INSERT', 'UPDATE') AND coalesce({counted_new}, false);
   BEGIN
     IF old_counted THEN
       PERFORM itagger_rating_statistics(OLD.image_id, OLD.attribute);
     END IF;
     IF new_counted AND NOT (old_counted AND OLD.image_id = NEW.image_id AND OLD.attribute = NEW.attribute) THEN
       PERFORM itagger_rating_statistics(NEW.image_id, NEW.attribute);
     END IF;
     RETURN NULL;
   END $$"""
_PG_TRIGGER = (
    "CREATE TRIGGER rating_means_change AFTER INSERT OR DELETE OR UPDATE OF {watched} "
    "ON ratings FOR EACH ROW EXECUTE FUNCTION itagger_rating_means()"
)


def _triggers(dialect: str, levels: bool) -> list[str]:
    """The trigger statements: this revision's (``levels``: first presentations, statistics
    refreshed) or 0001's."""
    counted, watched = (_COUNTED, _WATCHED) if levels else (_COUNTED_0001, _WATCHED_0001)
    old, new = (_refresh("OLD"), _refresh("NEW")) if levels else ("", "")

    def fill(text: str) -> str:
        for name, value in (
            ("{counted_old}", counted.format(row="OLD")),
            ("{counted_new}", counted.format(row="NEW")),
            ("{refresh_old}", old),
            ("{refresh_new}", new),
            ("{watched}", watched),
        ):
            text = text.replace(name, value)
        return text

    if dialect == "postgresql":
        if not levels:
            return [fill(_PG_FUNCTION_0001), fill(_PG_TRIGGER)]
        statistics = _PG_STATISTICS.replace("{counted_r}", _COUNTED.format(row="r"))
        return [statistics, fill(_PG_FUNCTION), fill(_PG_TRIGGER)]
    return [
        fill(f"CREATE TRIGGER rating_means_insert AFTER INSERT ON ratings BEGIN {_SQLITE_ADD} {new} END"),
        fill(f"CREATE TRIGGER rating_means_delete AFTER DELETE ON ratings BEGIN {_SQLITE_REMOVE} {old} END"),
        fill(
            f"CREATE TRIGGER rating_means_update AFTER UPDATE OF {watched} ON ratings "
            f"BEGIN {_SQLITE_REMOVE} {old} {_SQLITE_ADD} {new} END"
        ),
    ]


def _rebuild(counted: str) -> None:
    """Recount ``rating_means`` (n, total, mean) from ``ratings``."""
    op.execute("DELETE FROM rating_means")
    op.execute(
        "INSERT INTO rating_means (image_id, attribute, n, total, mean) SELECT r.image_id, r.attribute, "
        "count(*), sum(r.value), avg(r.value) FROM ratings r WHERE "
        + counted.format(row="r")
        + " GROUP BY r.image_id, r.attribute"
    )


def _drop_triggers(dialect: str) -> None:
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS rating_means_change ON ratings")
        op.execute("DROP FUNCTION IF EXISTS itagger_rating_statistics(integer, text)")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS rating_means_{name}")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_primary", sa.Boolean(), server_default=sa.false(), nullable=False))
    _drop_triggers(dialect)
    with op.batch_alter_table("rating_means", schema=None) as batch_op:
        batch_op.add_column(sa.Column("median", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("mode", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("modes", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("mode_share", sa.Float(), nullable=True))
        batch_op.create_index(
            "ix_rating_means_attribute_median", ["attribute", "median", "image_id"], unique=False
        )
        batch_op.create_index(
            "ix_rating_means_attribute_mode", ["attribute", "mode", "image_id"], unique=False
        )
    _rebuild(_COUNTED)  # repeated items no longer count
    op.execute(_FILL)
    # One name per VLM rater: 'vlm:' for VLM ratings imported without it, then the prompt
    # version of the call (the rater column is not watched by the triggers).
    op.execute("UPDATE ratings SET rater = 'vlm:' || rater WHERE source = 'vlm' AND rater NOT LIKE 'vlm:%'")
    op.execute(
        "UPDATE ratings SET rater = rater || '@' || (SELECT v.prompt_version FROM vlm_calls v "
        "WHERE v.id = ratings.vlm_call_id) WHERE source = 'vlm' AND rater NOT LIKE '%@%' AND "
        "(SELECT v.prompt_version FROM vlm_calls v WHERE v.id = ratings.vlm_call_id) IS NOT NULL"
    )
    for statement in _triggers(dialect, levels=True):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    _drop_triggers(dialect)
    op.execute(
        "UPDATE ratings SET rater = substr(rater, 1, length(rater) - length((SELECT v.prompt_version "
        "FROM vlm_calls v WHERE v.id = ratings.vlm_call_id)) - 1) WHERE source = 'vlm' AND rater LIKE "
        "'%@' || (SELECT v.prompt_version FROM vlm_calls v WHERE v.id = ratings.vlm_call_id)"
    )
    with op.batch_alter_table("rating_means", schema=None) as batch_op:
        batch_op.drop_index("ix_rating_means_attribute_mode")
        batch_op.drop_index("ix_rating_means_attribute_median")
        batch_op.drop_column("mode_share")
        batch_op.drop_column("modes")
        batch_op.drop_column("mode")
        batch_op.drop_column("median")
    _rebuild(_COUNTED_0001)
    for statement in _triggers(dialect, levels=False):
        op.execute(statement)
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("is_primary")
