"""usage and costs keyed by time first; on SQLite, they and their folded blocks are stored in
the order of their key (WITHOUT ROWID) instead of a rowid table beside an index of the key

A row of these tables is mostly its key, which a rowid table keeps twice: the large
organization's database (a year, 200 keys) was 464 MB, 189 MB of it the indexes of the keys.
With the hour (the day) first, a range of hours is found by the key itself: ix_usage_time goes.

Revision ID: 0020
Revises: 0019
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

DIMENSIONS = (
    "project_id",
    "user_id",
    "api_key_id",
    "model",
    "batch",
    "service_tier",
    "size",
    "image_source",
    "vector_store_id",
    "context_level",
    "api_source",
)
KEYS = {
    "usage": (
        ("connection", "source", "bucket_start", *DIMENSIONS),
        ("bucket_start", "connection", "source", *DIMENSIONS),
    ),
    "costs": (
        ("connection", "day", "project_id", "line_item", "api_key_id"),
        ("day", "connection", "project_id", "line_item", "api_key_id"),
    ),
    "usage_folded": (None, None),  # the key stays; the storage changes (SQLite)
    "costs_folded": (None, None),
}
"""Each table's key before and after (None: unchanged)."""


def _rebuild(upgrading: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if upgrading:
        op.drop_index("ix_usage_time", table_name="usage")
    for table, (before, after) in KEYS.items():
        key = after if upgrading else before
        if not sqlite:
            if key is not None:
                op.drop_constraint(f"pk_{table}", table, type_="primary")
                op.create_primary_key(f"pk_{table}", table, list(key))
            continue
        # SQLite changes a table's key or storage by copying it into a new table.
        options = {"sqlite_with_rowid": not upgrading}
        with op.batch_alter_table(table, recreate="always", table_kwargs=options) as batch:
            if key is not None:
                batch.drop_constraint(f"pk_{table}", type_="primary")
                batch.create_primary_key(f"pk_{table}", list(key))
    if not upgrading:
        op.create_index("ix_usage_time", "usage", ["bucket_start"])


def upgrade() -> None:
    _rebuild(upgrading=True)


def downgrade() -> None:
    _rebuild(upgrading=False)
