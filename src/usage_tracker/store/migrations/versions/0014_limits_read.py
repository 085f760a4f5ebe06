"""connections.limits_read_at and limits_error: when each connection's limits were last read,
and why the last try failed

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("connections", sa.Column("limits_read_at", sa.BigInteger()))
    op.add_column("connections", sa.Column("limits_error", sa.String(200)))


def downgrade() -> None:
    with op.batch_alter_table("connections") as batch:
        batch.drop_column("limits_error")
        batch.drop_column("limits_read_at")
