"""Comparative studies (pairwise, best–worst) and perceptual hashes of images

Revision ID: 0006_studies
Revises: 0004_vlm_batches
Create Date: 2026-12-06 07:00:00

* ``images.phash``: the 64-bit pHash of the image (``itagger_lib.designs.phash``), stored
  as a signed 64-bit integer with the same bits; ``NULL`` until computed (ingest computes
  it; ``itagger images phash`` or the first ``ws.near_duplicates()`` fills older rows).
* ``comparison_trials``: one trial of a pairwise or best–worst study given to one rater
  (the images shown, left to right, at a position of the rater's schedule).
* ``comparison_choices``: the judgement of a trial: the image chosen (best) and the one
  not chosen (worst), or a tie, by a person or a VLM, with its timing and provenance.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_studies"
down_revision = "0005_roles"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


# Taggers may take no advisory lock (0005_roles): a rater's first request writes their
# schedule under this per-study lock, taken as the owner; the key is made here, so a
# caller can lock a study's schedule writes and nothing else, until its transaction ends.
_LOCK_STUDY = """CREATE OR REPLACE FUNCTION itagger_lock_comparison_study(study integer) RETURNS void
   LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS $$
   SELECT pg_advisory_xact_lock(74306, study) $$"""


def upgrade() -> None:
    op.add_column("images", sa.Column("phash", sa.BigInteger(), nullable=True))  # in place, also on SQLite

    op.create_table(
        "comparison_trials",
        sa.Column("id", _ID, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("rater_index", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("items", _JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("study_id", "rater", "position", name="uq_comparison_trials_rater_position"),
    )
    with op.batch_alter_table("comparison_trials", schema=None) as batch_op:
        batch_op.create_index("ix_comparison_trials_status", ["study_id", "rater", "status", "position"])

    op.create_table(
        "comparison_choices",
        sa.Column("id", _ID, nullable=False),
        sa.Column("trial_id", _ID, nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("rater", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("best_image_id", sa.Integer(), nullable=True),
        sa.Column("worst_image_id", sa.Integer(), nullable=True),
        sa.Column("tie", sa.Boolean(), nullable=False),
        sa.Column("dwell_ms", sa.Integer(), nullable=True),
        sa.Column("session_id", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("vlm_call_id", sa.BigInteger(), nullable=True),
        sa.Column("chosen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["trial_id"], ["comparison_trials.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["best_image_id"], ["images.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["worst_image_id"], ["images.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("trial_id", name="uq_comparison_choices_trial"),
    )
    with op.batch_alter_table("comparison_choices", schema=None) as batch_op:
        batch_op.create_index("ix_comparison_choices_study", ["study_id", "rater"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_LOCK_STUDY)
        op.execute("REVOKE ALL ON FUNCTION itagger_lock_comparison_study(integer) FROM PUBLIC")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS itagger_lock_comparison_study(integer)")
    with op.batch_alter_table("comparison_choices", schema=None) as batch_op:
        batch_op.drop_index("ix_comparison_choices_study")
    op.drop_table("comparison_choices")
    with op.batch_alter_table("comparison_trials", schema=None) as batch_op:
        batch_op.drop_index("ix_comparison_trials_status")
    op.drop_table("comparison_trials")
    # Not batch mode: on SQLite a batch drop recreates ``images``, and dropping the old table
    # with foreign keys on deletes every row that cascades from it (ratings, metrics, ...).
    # SQLite ≥ 3.35 drops an unindexed column in place.
    op.execute("ALTER TABLE images DROP COLUMN phash")
