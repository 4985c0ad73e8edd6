"""VLM batches, prompt-cache usage and cache/batch prices

Revision ID: 0004_vlm_batches
Revises: 0001
Create Date: 2026-12-06 05:00:00

``vlm_batches``: one row per batch submitted to a provider's batch API; ``vlm_calls`` gains
the batch it was sent in and the prompt-cache reads and writes among its input tokens;
``vlm_prices`` gains the cached-input, cache-write and batch prices and the page a price
was read from.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_vlm_batches"
down_revision = "0003_levels"
branch_labels = None
depends_on = None

PRICE_COLUMNS = (
    "cached_input_per_mtok",
    "cache_write_per_mtok",
    "batch_input_per_mtok",
    "batch_output_per_mtok",
)


def upgrade() -> None:
    op.create_table(
        "vlm_batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=True),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("provider_batch_id", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("provider_status", sa.String(length=32), nullable=True),
        sa.Column("repair", sa.Boolean(), nullable=False),
        sa.Column("n_requests", sa.Integer(), nullable=False),
        sa.Column("n_succeeded", sa.Integer(), nullable=False),
        sa.Column("n_failed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("collected_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tag"),
    )
    with op.batch_alter_table("vlm_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vlm_batches_run_id"), ["run_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_vlm_batches_status"), ["status"], unique=False)

    with op.batch_alter_table("vlm_calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cached_input_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("cache_write_tokens", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("batch_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_vlm_calls_batch_id", "vlm_batches", ["batch_id"], ["id"], ondelete="SET NULL"
        )
        batch_op.create_index(batch_op.f("ix_vlm_calls_batch_id"), ["batch_id"], unique=False)

    with op.batch_alter_table("vlm_prices", schema=None) as batch_op:
        for name in PRICE_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("source", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("vlm_prices", schema=None) as batch_op:
        batch_op.drop_column("source")
        for name in reversed(PRICE_COLUMNS):
            batch_op.drop_column(name)

    with op.batch_alter_table("vlm_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vlm_calls_batch_id"))
        batch_op.drop_constraint("fk_vlm_calls_batch_id", type_="foreignkey")
        batch_op.drop_column("batch_id")
        batch_op.drop_column("cache_write_tokens")
        batch_op.drop_column("cached_input_tokens")

    with op.batch_alter_table("vlm_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vlm_batches_status"))
        batch_op.drop_index(batch_op.f("ix_vlm_batches_run_id"))
    op.drop_table("vlm_batches")
