"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-25 00:01:36.144594
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "codebooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source_text", sa.Text(), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", "version", name="uq_codebooks_name_version"),
    )
    op.create_table(
        "image_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("ext", sa.String(length=8), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("collection", sa.String(length=200), nullable=True),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingested_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("sha256"),
    )
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_images_collection"), ["collection"], unique=False)

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("params_hash", sa.String(length=64), nullable=True),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("n_total", sa.Integer(), nullable=False),
        sa.Column("n_done", sa.Integer(), nullable=False),
        sa.Column("n_skipped", sa.Integer(), nullable=False),
        sa.Column("n_failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("output_path", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_runs_params_hash"), ["params_hash"], unique=False)

    op.create_table(
        "settings",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "vlm_prices",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_per_mtok", sa.Float(), nullable=False),
        sa.Column("output_per_mtok", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "model"),
    )
    op.create_table(
        "image_set_members",
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["set_id"], ["image_sets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("set_id", "image_id"),
    )
    op.create_table(
        "image_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("source_name", sa.Text(), nullable=False),
        sa.Column("source_path", sa.Text(), nullable=False),
        sa.Column("ingested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ingested_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "source_path", name="uq_image_sources_path"),
    )
    with op.batch_alter_table("image_sources", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_image_sources_image_id"), ["image_id"], unique=False)

    op.create_table(
        "metrics",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("metric_version", sa.String(length=16), nullable=False),
        sa.Column("package_version", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("image_id", "params_hash", "key", name="uq_metrics_image_params_key"),
    )
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.create_index(
            "ix_metrics_params_key_value", ["params_hash", "key", "value", "image_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_metrics_run_id"), ["run_id"], unique=False)

    op.create_table(
        "run_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("input", sa.Text(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("run_failures", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_failures_run_id"), ["run_id"], unique=False)

    op.create_table(
        "studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("codebook_id", sa.Integer(), nullable=False),
        sa.Column("raters_per_image", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column(
            "design",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["codebook_id"],
            ["codebooks.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "vlm_calls",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("prompt_hash", sa.String(length=64), nullable=False),
        sa.Column("prompt_version", sa.String(length=32), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("codebook_id", sa.Integer(), nullable=True),
        sa.Column(
            "parameters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("repeat_index", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=True),
        sa.Column("output_tokens", sa.Integer(), nullable=True),
        sa.Column("reserved_usd", sa.Float(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("raw_response", sa.Text(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["codebook_id"],
            ["codebooks.id"],
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("vlm_calls", schema=None) as batch_op:
        batch_op.create_index("ix_vlm_calls_cache", ["cache_key", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_vlm_calls_run_id"), ["run_id"], unique=False)

    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("slot", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.create_index("ix_assignments_image", ["study_id", "image_id"], unique=False)
        batch_op.create_index("ix_assignments_rater", ["study_id", "rater", "position"], unique=False)

    op.create_table(
        "ratings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=100), nullable=False),
        sa.Column("codebook_id", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("value_text", sa.Text(), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=True),
        sa.Column("assignment_id", sa.Integer(), nullable=True),
        sa.Column("position", sa.Integer(), nullable=True),
        sa.Column("dwell_ms", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("is_repeat", sa.Boolean(), nullable=False),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("repeat_index", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("vlm_call_id", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("rated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["assignment_id"], ["assignments.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["codebook_id"],
            ["codebooks.id"],
        ),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.create_index("ix_ratings_image_attribute", ["image_id", "attribute"], unique=False)
        batch_op.create_index("ix_ratings_rater", ["rater", "attribute"], unique=False)
        batch_op.create_index(
            "ix_ratings_attribute_image_value", ["attribute", "image_id", "value"], unique=False
        )

    op.create_table(
        "rating_means",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("attribute", sa.String(length=100), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id", "attribute"),
    )
    with op.batch_alter_table("rating_means", schema=None) as batch_op:
        batch_op.create_index(
            "ix_rating_means_attribute_mean", ["attribute", "mean", "image_id"], unique=False
        )
    for statement in RATING_MEAN_TRIGGERS[op.get_bind().dialect.name]:
        op.execute(statement)


# rating_means is kept by triggers: +1 / +value for a counted new row, -1 / -value for a
# counted old row. Deltas (not recomputation) stay exact under concurrent writers on Postgres:
# ON CONFLICT DO UPDATE applies each delta to the newest row version.
_COUNTED = "{row}.source IN ('human', 'import') AND {row}.value IS NOT NULL"
_SQLITE_ADD = (
    "INSERT INTO rating_means (image_id, attribute, n, total, mean) "
    "SELECT NEW.image_id, NEW.attribute, 1, NEW.value, NEW.value WHERE " + _COUNTED.format(row="NEW") + " "
    "ON CONFLICT (image_id, attribute) DO UPDATE SET n = n + 1, total = total + excluded.total, "
    "mean = (total + excluded.total) / (n + 1);"
)
_SQLITE_REMOVE = (
    "UPDATE rating_means SET n = n - 1, total = total - OLD.value, "
    "mean = CASE WHEN n > 1 THEN (total - OLD.value) / (n - 1) END "
    "WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND " + _COUNTED.format(row="OLD") + "; "
    "DELETE FROM rating_means WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND n <= 0;"
)
RATING_MEAN_TRIGGERS: dict[str, list[str]] = {
    "sqlite": [
        f"CREATE TRIGGER rating_means_insert AFTER INSERT ON ratings BEGIN {_SQLITE_ADD} END",
        f"CREATE TRIGGER rating_means_delete AFTER DELETE ON ratings BEGIN {_SQLITE_REMOVE} END",
        "CREATE TRIGGER rating_means_update AFTER UPDATE OF image_id, attribute, source, value ON ratings "
        f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
    ],
    "postgresql": [
        # SECURITY DEFINER: a tagger's role (row-level security on ratings) needs no
        # privilege on rating_means; the function runs as the owner that ran the migration.
        """CREATE OR REPLACE FUNCTION itagger_rating_means() RETURNS trigger
           LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
           BEGIN
             IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.source IN ('human', 'import')
                AND OLD.value IS NOT NULL THEN
               UPDATE rating_means SET n = n - 1, total = total - OLD.value,
                      mean = CASE WHEN n > 1 THEN (total - OLD.value) / (n - 1) END
                WHERE image_id = OLD.image_id AND attribute = OLD.attribute;
               DELETE FROM rating_means
                WHERE image_id = OLD.image_id AND attribute = OLD.attribute AND n <= 0;
             END IF;
             IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.source IN ('human', 'import')
                AND NEW.value IS NOT NULL THEN
               INSERT INTO rating_means AS m (image_id, attribute, n, total, mean)
               VALUES (NEW.image_id, NEW.attribute, 1, NEW.value, NEW.value)
               ON CONFLICT (image_id, attribute) DO UPDATE
                 SET n = m.n + 1, total = m.total + EXCLUDED.total,
                     mean = (m.total + EXCLUDED.total) / (m.n + 1);
             END IF;
             RETURN NULL;
           END $$""",
        "CREATE TRIGGER rating_means_change AFTER INSERT OR DELETE OR UPDATE OF image_id, attribute, "
        "source, value ON ratings FOR EACH ROW EXECUTE FUNCTION itagger_rating_means()",
    ],
}


def downgrade() -> None:
    with op.batch_alter_table("rating_means", schema=None) as batch_op:
        batch_op.drop_index("ix_rating_means_attribute_mean")
    op.drop_table("rating_means")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS rating_means_change ON ratings")
        op.execute("DROP FUNCTION IF EXISTS itagger_rating_means()")

    with op.batch_alter_table("ratings", schema=None) as batch_op:
        batch_op.drop_index("ix_ratings_attribute_image_value")
        batch_op.drop_index("ix_ratings_rater")
        batch_op.drop_index("ix_ratings_image_attribute")

    op.drop_table("ratings")
    with op.batch_alter_table("assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_assignments_rater")
        batch_op.drop_index("ix_assignments_image")

    op.drop_table("assignments")
    with op.batch_alter_table("vlm_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vlm_calls_run_id"))
        batch_op.drop_index("ix_vlm_calls_cache")

    op.drop_table("vlm_calls")
    op.drop_table("studies")
    with op.batch_alter_table("run_failures", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_failures_run_id"))

    op.drop_table("run_failures")
    with op.batch_alter_table("metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_metrics_run_id"))
        batch_op.drop_index("ix_metrics_params_key_value")

    op.drop_table("metrics")
    with op.batch_alter_table("image_sources", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_image_sources_image_id"))

    op.drop_table("image_sources")
    op.drop_table("image_set_members")
    op.drop_table("vlm_prices")
    op.drop_table("settings")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_params_hash"))
        batch_op.drop_index(batch_op.f("ix_runs_kind"))

    op.drop_table("runs")
    with op.batch_alter_table("images", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_images_collection"))

    op.drop_table("images")
    op.drop_table("image_sets")
    op.drop_table("codebooks")
