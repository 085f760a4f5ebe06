"""accounts.team: the team a lead sees

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("team", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("team")
