"""person_teams: a person's team from the People page or the OpenID provider's claim

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_teams",
        sa.Column("who", sa.String(400), nullable=False),
        sa.Column("source", sa.String(10), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(320), nullable=False),
        sa.Column("changed_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("who", "source", name=op.f("pk_person_teams")),
    )


def downgrade() -> None:
    op.drop_table("person_teams")
