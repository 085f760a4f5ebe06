"""usage and costs keyed by time first; on SQLite, they and their folded blocks are stored in
the order of their key (WITHOUT ROWID) instead of a rowid table beside an index of the key

A row of these tables is mostly its key, which a rowid table keeps twice: the large
organization's database (a year, 200 keys) was 464 MB, 189 MB of it the indexes of the keys.
With the hour (the day) first, a range of hours is found by the key itself: ix_usage_time goes.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

TIME = {
    "usage": ("bucket_start", 2),
    "costs": ("day", 1),
    "usage_folded": None,
    "costs_folded": None,
}
"""Each table's time column, first in its key after this migration, and its place in the key
before (after the connection and, for usage, the source); None: the key stays, the storage
changes (SQLite)."""


def _rebuild(upgrading: bool) -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if upgrading:
        op.drop_index("ix_usage_time", table_name="usage")
    for table, moved in TIME.items():
        key = None
        if moved is not None:  # the key as it is, the time column moved
            time, place = moved
            now = sa.inspect(bind).get_pk_constraint(table)["constrained_columns"]
            rest = [c for c in now if c != time]
            key = [time, *rest] if upgrading else [*rest[:place], time, *rest[place:]]
        if not sqlite:
            if key is not None:
                op.drop_constraint(f"pk_{table}", table, type_="primary")
                op.create_primary_key(f"pk_{table}", table, key)
            continue
        # SQLite changes a table's key or storage by copying it into a new table.
        options = {"sqlite_with_rowid": not upgrading}
        with op.batch_alter_table(table, recreate="always", table_kwargs=options) as batch:
            if key is not None:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", key)
    if not upgrading:
        op.create_index("ix_usage_time", "usage", ["bucket_start"])


def upgrade() -> None:
    _rebuild(upgrading=True)


def downgrade() -> None:
    _rebuild(upgrading=False)
