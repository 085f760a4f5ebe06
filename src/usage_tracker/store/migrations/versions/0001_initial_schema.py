"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-25 10:04:06.461915
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("project_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("redacted_value", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
        sa.Column("owner_type", sa.String(length=40), nullable=True),
        sa.Column("owner_id", sa.String(length=200), nullable=True),
        sa.Column("owner_name", sa.Text(), nullable=True),
        sa.Column("owner_email", sa.Text(), nullable=True),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_table(
        "costs",
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(length=200), nullable=False),
        sa.Column("line_item", sa.String(length=300), nullable=False),
        sa.Column("api_key_id", sa.String(length=200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=10), nullable=False),
        sa.Column("quantity", sa.BigInteger(), nullable=True),
        sa.Column("quantity_unit", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint(
            "day", "project_id", "line_item", "api_key_id", name=op.f("pk_costs")
        ),
    )
    op.create_table(
        "projects",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=True),
        sa.Column("archived_at", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=True),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
    )
    op.create_table(
        "sync_state",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("backfill_from", sa.BigInteger(), nullable=False),
        sa.Column("done_until", sa.BigInteger(), nullable=False),
        sa.Column("backfill_complete", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_attempt_at", sa.BigInteger(), nullable=True),
        sa.Column("last_success_at", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("runs", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_sync_state")),
    )
    op.create_table(
        "usage",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("bucket_start", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("api_key_id", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("batch", sa.String(length=200), nullable=False),
        sa.Column("service_tier", sa.String(length=200), nullable=False),
        sa.Column("size", sa.String(length=200), nullable=False),
        sa.Column("image_source", sa.String(length=200), nullable=False),
        sa.Column("vector_store_id", sa.String(length=200), nullable=False),
        sa.Column("context_level", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_uncached_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cache_write_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_text_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_text_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_text_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_image_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_image_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_image_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("num_model_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("images", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("characters", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("num_sessions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("num_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "source",
            "bucket_start",
            "project_id",
            "user_id",
            "api_key_id",
            "model",
            "batch",
            "service_tier",
            "size",
            "image_source",
            "vector_store_id",
            "context_level",
            name=op.f("pk_usage"),
        ),
    )
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.create_index("ix_usage_time", ["bucket_start"], unique=False)

    op.create_table(
        "usage_daily",
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("day", sa.BigInteger(), nullable=False),
        sa.Column("project_id", sa.String(length=200), nullable=False),
        sa.Column("user_id", sa.String(length=200), nullable=False),
        sa.Column("api_key_id", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("batch", sa.String(length=200), nullable=False),
        sa.Column("service_tier", sa.String(length=200), nullable=False),
        sa.Column("size", sa.String(length=200), nullable=False),
        sa.Column("image_source", sa.String(length=200), nullable=False),
        sa.Column("vector_store_id", sa.String(length=200), nullable=False),
        sa.Column("context_level", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_uncached_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cache_write_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_text_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_text_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_text_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_audio_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_image_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("input_cached_image_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_image_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("num_model_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("images", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("characters", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("seconds", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("usage_bytes", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("num_sessions", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("num_requests", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint(
            "source",
            "day",
            "project_id",
            "user_id",
            "api_key_id",
            "model",
            "batch",
            "service_tier",
            "size",
            "image_source",
            "vector_store_id",
            "context_level",
            name=op.f("pk_usage_daily"),
        ),
    )
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.create_index("ix_usage_daily_time", ["day"], unique=False)

    op.create_table(
        "users",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("role", sa.String(length=40), nullable=True),
        sa.Column("last_seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )


def downgrade() -> None:

    op.drop_table("users")
    with op.batch_alter_table("usage_daily", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_daily_time")

    op.drop_table("usage_daily")
    with op.batch_alter_table("usage", schema=None) as batch_op:
        batch_op.drop_index("ix_usage_time")

    op.drop_table("usage")
    op.drop_table("sync_state")
    op.drop_table("projects")
    op.drop_table("costs")
    op.drop_table("api_keys")
