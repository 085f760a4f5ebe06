"""statements: each closed month's statement, kept as it was when the month closed

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "statements",
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("closed_at", sa.BigInteger(), nullable=False),
        sa.Column("allocation", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("team_totals", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("month", name=op.f("pk_statements")),
    )


def downgrade() -> None:
    op.drop_table("statements")
