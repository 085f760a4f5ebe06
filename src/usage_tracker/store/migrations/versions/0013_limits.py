"""limits: the spend limits, spend alerts and rate limits each connection's provider reports

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "limits",
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("project_id", sa.String(100), nullable=False),
        sa.Column("ident", sa.String(200), nullable=False),
        sa.Column("amount_usd", sa.BigInteger()),
        sa.Column("interval", sa.String(20)),
        sa.Column("enforcing", sa.Boolean()),
        sa.Column("model", sa.String(200)),
        sa.Column("figures", sa.Text()),
        sa.Column("read_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "connection", "kind", "project_id", "ident", name=op.f("pk_limits")
        ),
    )


def downgrade() -> None:
    op.drop_table("limits")
