"""upstream_notes: what the API refused (a group_by dimension, a whole source) or sent that this
version does not know, per source, with when it was last checked

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upstream_notes",
        sa.Column("source", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False),
        sa.Column("noted_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("source", "kind", "detail"),
    )


def downgrade() -> None:
    op.drop_table("upstream_notes")
