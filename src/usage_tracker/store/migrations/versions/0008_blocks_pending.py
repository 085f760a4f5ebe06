"""store_state: where usage_folded's longer blocks wait to be summed again (blocks_from,
blocks_until)

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("store_state") as table:
        table.add_column(sa.Column("blocks_from", sa.BigInteger(), nullable=True))
        table.add_column(sa.Column("blocks_until", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("store_state") as table:
        table.drop_column("blocks_until")
        table.drop_column("blocks_from")
