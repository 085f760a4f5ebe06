"""login_attempts: sign-in attempts per account or address and minute, shared by every worker
and replica (they were counted in each process's memory)

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_attempts",
        sa.Column("throttle_key", sa.String(400), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("throttle_key", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("login_attempts")
