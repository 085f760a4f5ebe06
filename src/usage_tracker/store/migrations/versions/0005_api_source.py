"""usage: the api_source dimension and the 30-minute and 12-hour cache-write tokens

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

KEY = [
    "source",
    "{time}",
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
]
NEW_METRICS = ("input_cache_write_30m_tokens", "input_cache_write_12h_tokens")
TABLES = {"usage": "bucket_start", "usage_daily": "day"}


def upgrade() -> None:
    for table, time_column in TABLES.items():
        key = [time_column if c == "{time}" else c for c in KEY]
        with op.batch_alter_table(table) as batch:
            # Rows stored before are "not grouped by api_source": the empty value, as null is.
            batch.add_column(
                sa.Column("api_source", sa.String(length=200), nullable=False, server_default="")
            )
            for metric in NEW_METRICS:
                batch.add_column(
                    sa.Column(metric, sa.BigInteger(), nullable=False, server_default="0")
                )
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", [*key, "api_source"])


def downgrade() -> None:
    for table, time_column in TABLES.items():
        key = [time_column if c == "{time}" else c for c in KEY]
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            for metric in NEW_METRICS:
                batch.drop_column(metric)
            batch.drop_column("api_source")
