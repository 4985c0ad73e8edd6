"""statistics by level of measurement in rating_means; one name per VLM rater; primary VLM runs

Revision ID: 0003_levels
Revises: 0001
Create Date: 2026-12-10 00:00:00

* ``rating_means`` gains ``median``, ``mode``, ``modes`` and ``mode_share`` beside ``n``,
  ``total`` and ``mean`` (the explorer shows the statistic of each attribute's level of
  measurement), indexed like ``mean``; the triggers keep the new columns too, recomputing
  them from the image's counted ratings after the row is locked by the delta update. It now
  counts first presentations only (repeated items are test-retest, as in the per-image
  table and agreement), so the table is recounted.
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
# SET expressions see the row as it was, so ``mode`` (which needs the new ``modes``) is a
# second statement. Correlated on rating_means itself: the same text refreshes one key (in
# the triggers) or every row (filling the columns in).
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
_PG_FUNCTION = """CREATE OR REPLACE FUNCTION itagger_rating_means() RETURNS trigger
   LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   BEGIN
     IF TG_OP IN ('UPDATE', 'DELETE') AND {counted_old} THEN
       UPDATE rating_means SET n = n - 1, total = total - OLD.value,
              mean = CASE WHEN n > 1 THEN (total - OLD.value) / (n - 1) END
        WHERE image_id = OLD.image_id AND attribute = OLD.attribute;
       DELETE FROM rating_means
        WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND n <= 0;
       {refresh_old}
     END IF;
     IF TG_OP IN ('INSERT', 'UPDATE') AND {counted_new} THEN
       INSERT INTO rating_means AS m (image_id, attribute, n, total, mean)
       VALUES (NEW.image_id, NEW.attribute, 1, NEW.value, NEW.value)
       ON CONFLICT (image_id, attribute) DO UPDATE
         SET n = m.n + 1, total = m.total + EXCLUDED.total,
             mean = (m.total + EXCLUDED.total) / (m.n + 1);
       {refresh_new}
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
        return [fill(_PG_FUNCTION), fill(_PG_TRIGGER)]
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
    op.execute(_SUMMARY.format(where=""))
    op.execute(_MODE.format(where=""))
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
