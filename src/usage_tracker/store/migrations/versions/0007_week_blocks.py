"""usage_folded: week blocks (Monday to Monday, UTC), summed from the day blocks already there

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

WEEK, MONDAY = 7 * 86400, 4 * 86400  # 1970-01-01 was a Thursday


def upgrade() -> None:
    folded = sa.Table("usage_folded", sa.MetaData(), autoload_with=op.get_bind())
    summed = [c for c in folded.columns if c.name not in ("hours", "start", "grouping", "value")]
    week = (folded.c.start - (folded.c.start - MONDAY) % WEEK).label("start")
    days = (
        sa.select(
            sa.literal(168), week, folded.c.grouping, folded.c.value, *map(sa.func.sum, summed)
        )
        .where(folded.c.hours == 24)
        .group_by(week, folded.c.grouping, folded.c.value)
    )
    columns = ["hours", "start", "grouping", "value", *(c.name for c in summed)]
    op.execute(sa.insert(folded).from_select(columns, days))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM usage_folded WHERE hours = 168"))
