"""SQLAlchemy 2 models of the workbench database.

The schema itself is owned by the Alembic migrations in ``db/migrations``; these classes
mirror it for queries and must be kept in step (a test compares them).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONType, list[Any]: JSONType}


class Image(Base):
    """One image, identified by the SHA-256 of its bytes."""

    __tablename__ = "images"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(sa.String(64), unique=True)
    ext: Mapped[str] = mapped_column(sa.String(8))
    format: Mapped[str] = mapped_column(sa.String(16))
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    bytes: Mapped[int] = mapped_column(sa.BigInteger)
    source_name: Mapped[str] = mapped_column(sa.Text)
    source_path: Mapped[str] = mapped_column(sa.Text)
    collection: Mapped[str | None] = mapped_column(sa.String(200), index=True)
    ingested_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    ingested_by: Mapped[str] = mapped_column(sa.String(200))
    # 64-bit pHash (itagger_lib.designs.phash) as a signed integer; NULL until computed.
    phash: Mapped[int | None] = mapped_column(sa.BigInteger)


class ImageSource(Base):
    """Every file name and path an image was ingested from (duplicates share one image)."""

    __tablename__ = "image_sources"
    __table_args__ = (sa.UniqueConstraint("image_id", "source_path", name="uq_image_sources_path"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), index=True)
    source_name: Mapped[str] = mapped_column(sa.Text)
    source_path: Mapped[str] = mapped_column(sa.Text)
    ingested_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    ingested_by: Mapped[str] = mapped_column(sa.String(200))


class Run(Base):
    """One execution of a job (ingest, science, vlm, batch, ...) and its outcome."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32), index=True)
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params_hash: Mapped[str | None] = mapped_column(sa.String(64), index=True)
    version: Mapped[str] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(16), default="running")
    started_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(sa.String(200))
    n_total: Mapped[int] = mapped_column(sa.Integer, default=0)
    n_done: Mapped[int] = mapped_column(sa.Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(sa.Integer, default=0)
    n_failed: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    output_path: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # A VLM run declared the primary run of its model × prompt version (itagger_lib.vlm.primary).
    is_primary: Mapped[bool] = mapped_column(sa.Boolean, default=False, server_default=sa.false())


class RunFailure(Base):
    """One input a run could not process, and why."""

    __tablename__ = "run_failures"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    input: Mapped[str] = mapped_column(sa.Text)
    image_id: Mapped[int | None] = mapped_column(sa.ForeignKey("images.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)


class Metric(Base):
    """One science value of one image under one parameter set, with its provenance."""

    __tablename__ = "metrics"
    __table_args__ = (
        sa.UniqueConstraint("image_id", "params_hash", "key", name="uq_metrics_image_params_key"),
        sa.Index("ix_metrics_params_key_value", "params_hash", "key", "value", "image_id"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"))
    run_id: Mapped[int] = mapped_column(sa.ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    params_hash: Mapped[str] = mapped_column(sa.String(64))
    key: Mapped[str] = mapped_column(sa.String(64))
    value: Mapped[float | None] = mapped_column(sa.Float)
    metric_version: Mapped[str] = mapped_column(sa.String(16))
    package_version: Mapped[str] = mapped_column(sa.String(32))


class Setting(Base):
    """A workspace setting (VLM provider and model, budgets, kill switch, ...)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_by: Mapped[str] = mapped_column(sa.String(200))


class Codebook(Base):
    """A stored version of an attribute codebook; never edited once it has ratings."""

    __tablename__ = "codebooks"
    __table_args__ = (sa.UniqueConstraint("name", "version", name="uq_codebooks_name_version"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    version: Mapped[str] = mapped_column(sa.String(64))
    content_hash: Mapped[str] = mapped_column(sa.String(64))
    source_text: Mapped[str] = mapped_column(sa.Text)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(200))


class Study(Base):
    """A rating study: which codebook, how many raters per image, and its design."""

    __tablename__ = "studies"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    codebook_id: Mapped[int] = mapped_column(sa.ForeignKey("codebooks.id"))
    raters_per_image: Mapped[int] = mapped_column(sa.Integer, default=3)
    seed: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    mode: Mapped[str] = mapped_column(sa.String(16), default="blind")
    design: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(200))


class Assignment(Base):
    """One slot of a study: an image given to one rater at one position of their sequence."""

    __tablename__ = "assignments"
    __table_args__ = (
        sa.Index("ix_assignments_rater", "study_id", "rater", "position"),
        sa.Index("ix_assignments_image", "study_id", "image_id"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(sa.Integer, default=0)
    rater: Mapped[str | None] = mapped_column(sa.String(200))
    position: Mapped[int | None] = mapped_column(sa.Integer)
    kind: Mapped[str] = mapped_column(sa.String(16), default="normal")
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    assigned_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Rating(Base):
    """One value of one attribute for one image by one rater (human, VLM, import, adjudication)."""

    __tablename__ = "ratings"
    __table_args__ = (
        sa.Index("ix_ratings_image_attribute", "image_id", "attribute"),
        sa.Index("ix_ratings_rater", "rater", "attribute"),
        sa.Index("ix_ratings_attribute_image_value", "attribute", "image_id", "value"),
        sa.Index("ix_ratings_assignment", "assignment_id"),  # one item's answers (0005_roles)
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"))
    attribute: Mapped[str] = mapped_column(sa.String(100))
    codebook_id: Mapped[int] = mapped_column(sa.ForeignKey("codebooks.id"))
    rater: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str] = mapped_column(sa.String(16), default="human")
    value: Mapped[float | None] = mapped_column(sa.Float)
    value_text: Mapped[str | None] = mapped_column(sa.Text)
    mode: Mapped[str] = mapped_column(sa.String(16), default="blind")
    study_id: Mapped[int | None] = mapped_column(sa.ForeignKey("studies.id", ondelete="SET NULL"))
    assignment_id: Mapped[int | None] = mapped_column(sa.ForeignKey("assignments.id", ondelete="SET NULL"))
    position: Mapped[int | None] = mapped_column(sa.Integer)
    dwell_ms: Mapped[int | None] = mapped_column(sa.Integer)
    session_id: Mapped[str | None] = mapped_column(sa.String(64))
    is_repeat: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    is_gold: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    repeat_index: Mapped[int] = mapped_column(sa.Integer, default=0)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    vlm_call_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    note: Mapped[str | None] = mapped_column(sa.Text)
    rated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class RatingMean(Base):
    """Per image and attribute: the statistics of human and imported ratings the explorer uses.

    ``n``, ``total`` and ``mean``; ``median`` (the midpoint of the two middle values when
    ``n`` is even); the modal value ``mode`` (``NULL`` when ``modes`` > 1 values tie),
    ``modes`` and ``mode_share`` (the modal values' share). Which one stands for an image
    depends on the attribute's level of measurement (nominal: mode, ordinal: median,
    interval: mean; :mod:`itagger_lib.ratings.aggregate`). Kept by database triggers on
    ``ratings`` (insert, update, delete; defined in the migrations), so every write path,
    including a tagger's own SQL role, keeps it exact; the explorer filters and sorts through
    the ``(attribute, <statistic>, image_id)`` indexes instead of aggregating all ratings per
    query. VLM and adjudicated values are not counted.
    """

    __tablename__ = "rating_means"
    __table_args__ = (
        sa.Index("ix_rating_means_attribute_mean", "attribute", "mean", "image_id"),
        sa.Index("ix_rating_means_attribute_median", "attribute", "median", "image_id"),
        sa.Index("ix_rating_means_attribute_mode", "attribute", "mode", "image_id"),
    )

    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    attribute: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    n: Mapped[int] = mapped_column(sa.Integer)
    total: Mapped[float] = mapped_column(sa.Float)
    mean: Mapped[float | None] = mapped_column(sa.Float)
    median: Mapped[float | None] = mapped_column(sa.Float)
    mode: Mapped[float | None] = mapped_column(sa.Float)
    modes: Mapped[int | None] = mapped_column(sa.Integer)
    mode_share: Mapped[float | None] = mapped_column(sa.Float)


class VLMPrice(Base):
    """A workspace's price of one provider's model in USD per million tokens (it overrides
    the shipped table, ``itagger_lib/data/vlm_prices.csv``): input, output, prompt-cache
    reads and writes, and the provider's batch API; ``source``: where it was read."""

    __tablename__ = "vlm_prices"

    provider: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    model: Mapped[str] = mapped_column(sa.String(200), primary_key=True)
    input_per_mtok: Mapped[float] = mapped_column(sa.Float)
    output_per_mtok: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    cached_input_per_mtok: Mapped[float | None] = mapped_column(sa.Float)
    cache_write_per_mtok: Mapped[float | None] = mapped_column(sa.Float)
    batch_input_per_mtok: Mapped[float | None] = mapped_column(sa.Float)
    batch_output_per_mtok: Mapped[float | None] = mapped_column(sa.Float)
    source: Mapped[str | None] = mapped_column(sa.Text)


class VLMBatch(Base):
    """One batch submitted to a provider's batch API (OpenAI Batch, Anthropic Message
    Batches) for a VLM run; its calls are the ``vlm_calls`` rows with this ``batch_id``.

    ``status``: ``submitting`` (calls reserved, the provider asked), ``in_progress``,
    ``cancelling``, ``ended`` (results ready), ``collected``, ``failed`` (nothing ran) or
    ``lost`` (a submission interrupted and not found at the provider). ``tag`` marks the
    batch at the provider where it takes metadata, to find it again after a crash.
    """

    __tablename__ = "vlm_batches"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(200))
    base_url: Mapped[str | None] = mapped_column(sa.Text)
    tag: Mapped[str] = mapped_column(sa.String(64), unique=True)
    provider_batch_id: Mapped[str | None] = mapped_column(sa.String(200))
    status: Mapped[str] = mapped_column(sa.String(16), index=True)
    provider_status: Mapped[str | None] = mapped_column(sa.String(32))
    repair: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    n_requests: Mapped[int] = mapped_column(sa.Integer, default=0)
    n_succeeded: Mapped[int] = mapped_column(sa.Integer, default=0)
    n_failed: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    submitted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    collected_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class VLMCall(Base):
    """The ledger: one request to a VLM (or its reservation), with tokens, cost and response.

    ``input_tokens`` counts every input token; ``cached_input_tokens`` and
    ``cache_write_tokens`` are the prompt-cache reads and writes among them. ``batch_id``:
    the provider batch it was sent in (``None``: sent on its own).
    """

    __tablename__ = "vlm_calls"
    __table_args__ = (sa.Index("ix_vlm_calls_cache", "cache_key", "status"),)

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"), index=True)
    cache_key: Mapped[str] = mapped_column(sa.String(64))
    provider: Mapped[str] = mapped_column(sa.String(64))
    model: Mapped[str] = mapped_column(sa.String(200))
    prompt_hash: Mapped[str] = mapped_column(sa.String(64))
    prompt_version: Mapped[str] = mapped_column(sa.String(32))
    image_id: Mapped[int | None] = mapped_column(sa.ForeignKey("images.id", ondelete="SET NULL"))
    image_sha256: Mapped[str] = mapped_column(sa.String(64))
    codebook_id: Mapped[int | None] = mapped_column(sa.ForeignKey("codebooks.id"))
    parameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    repeat_index: Mapped[int] = mapped_column(sa.Integer, default=0)
    status: Mapped[str] = mapped_column(sa.String(16), default="reserved")
    input_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    output_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    reserved_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    cost_usd: Mapped[float] = mapped_column(sa.Float, default=0.0)
    latency_ms: Mapped[int | None] = mapped_column(sa.Integer)
    attempts: Mapped[int] = mapped_column(sa.Integer, default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)
    raw_response: Mapped[str | None] = mapped_column(sa.Text)
    rationale: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    cached_input_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    cache_write_tokens: Mapped[int | None] = mapped_column(sa.Integer)
    batch_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("vlm_batches.id", ondelete="SET NULL"), index=True
    )


class ImageSet(Base):
    """A named selection of images (from the explorer, or a collection for analysis)."""

    __tablename__ = "image_sets"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(sa.String(200))


class ImageSetMember(Base):
    __tablename__ = "image_set_members"

    set_id: Mapped[int] = mapped_column(sa.ForeignKey("image_sets.id", ondelete="CASCADE"), primary_key=True)
    image_id: Mapped[int] = mapped_column(sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)


class ComparisonTrial(Base):
    """One trial of a pairwise or best–worst study for one rater: the images shown, in order."""

    __tablename__ = "comparison_trials"
    __table_args__ = (
        sa.UniqueConstraint("study_id", "rater", "position", name="uq_comparison_trials_rater_position"),
        sa.Index("ix_comparison_trials_status", "study_id", "rater", "status", "position"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    rater: Mapped[str] = mapped_column(sa.String(200))
    rater_index: Mapped[int] = mapped_column(sa.Integer)
    position: Mapped[int] = mapped_column(sa.Integer)
    items: Mapped[list[Any]] = mapped_column()
    status: Mapped[str] = mapped_column(sa.String(16), default="open")
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class ComparisonChoice(Base):
    """The judgement of one trial: the image chosen (best), the one not chosen (worst), or a tie."""

    __tablename__ = "comparison_choices"
    __table_args__ = (
        sa.UniqueConstraint("trial_id", name="uq_comparison_choices_trial"),
        sa.Index("ix_comparison_choices_study", "study_id", "rater"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True)
    trial_id: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("comparison_trials.id", ondelete="CASCADE"),
    )
    study_id: Mapped[int] = mapped_column(sa.ForeignKey("studies.id", ondelete="CASCADE"))
    rater: Mapped[str] = mapped_column(sa.String(200))
    source: Mapped[str] = mapped_column(sa.String(16), default="human")
    best_image_id: Mapped[int | None] = mapped_column(sa.ForeignKey("images.id", ondelete="SET NULL"))
    worst_image_id: Mapped[int | None] = mapped_column(sa.ForeignKey("images.id", ondelete="SET NULL"))
    tie: Mapped[bool] = mapped_column(sa.Boolean, default=False)
    dwell_ms: Mapped[int | None] = mapped_column(sa.Integer)
    session_id: Mapped[str | None] = mapped_column(sa.String(64))
    run_id: Mapped[int | None] = mapped_column(sa.ForeignKey("runs.id", ondelete="SET NULL"))
    vlm_call_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    chosen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
