"""usage: stored estimates, the per-grouping rollups (usage_folded, costs_folded), the state

Revision ID: 0006
Revises: 0005

The estimates and the rollup are filled when the store is next opened (they need the prices
in force, which only the running program knows): see ``Store.open``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

METRICS = (  # the usage counters as of this revision
    *("input_tokens", "output_tokens", "input_cached_tokens", "input_uncached_tokens"),
    *("input_cache_write_tokens", "input_cache_write_30m_tokens", "input_cache_write_12h_tokens"),
    *("input_text_tokens", "output_text_tokens", "input_cached_text_tokens"),
    *("input_audio_tokens", "input_cached_audio_tokens", "output_audio_tokens"),
    *("input_image_tokens", "input_cached_image_tokens", "output_image_tokens"),
    *("num_model_requests", "images", "characters", "seconds", "usage_bytes", "num_sessions"),
    "num_requests",
)


def _estimates() -> list[sa.Column[int]]:
    return [
        sa.Column("estimated_usd", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("unpriced_tokens", sa.BigInteger(), nullable=False, server_default="0"),
    ]


def upgrade() -> None:
    for table in ("usage", "usage_daily"):
        with op.batch_alter_table(table) as batch:
            for column in _estimates():
                batch.add_column(column)
    op.create_index("ix_usage_daily_key_day", "usage_daily", ["api_key_id", "day"])
    op.create_index("ix_usage_daily_model_day", "usage_daily", ["model", "day"])
    op.create_table(
        "usage_folded",
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("grouping", sa.String(20), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        *(sa.Column(m, sa.BigInteger(), nullable=False, server_default="0") for m in METRICS),
        *_estimates(),
        sa.PrimaryKeyConstraint("hours", "start", "grouping", "value", name="pk_usage_folded"),
    )
    op.create_index(
        "ix_usage_folded_value", "usage_folded", ["grouping", "value", "hours", "start"]
    )
    op.create_table(
        "costs_folded",
        sa.Column("hours", sa.Integer(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("grouping", sa.String(20), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hours", "start", "grouping", "value", name="pk_costs_folded"),
    )
    op.create_index("ix_costs_folded_days", "costs_folded", ["grouping", "hours", "start"])
    state = op.create_table(
        "store_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("data_version", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("prices", sa.Text(), nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("id", name="pk_store_state"),
    )
    # No prices yet: the next Store.open estimates every stored row and builds the rollup.
    op.bulk_insert(state, [{"id": 1, "data_version": 0, "prices": ""}])


def downgrade() -> None:
    op.drop_table("store_state")
    op.drop_index("ix_costs_folded_days", "costs_folded")
    op.drop_table("costs_folded")
    op.drop_index("ix_usage_folded_value", "usage_folded")
    op.drop_table("usage_folded")
    op.drop_index("ix_usage_daily_model_day", "usage_daily")
    op.drop_index("ix_usage_daily_key_day", "usage_daily")
    for table in ("usage", "usage_daily"):
        with op.batch_alter_table(table) as batch:
            for column in _estimates():
                batch.drop_column(column.name)
