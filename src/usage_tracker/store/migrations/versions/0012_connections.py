"""connections: every stored row's key starts with the connection it came from; the rows stored
before belong to the connection ``openai`` (the one OPENAI_ADMIN_KEY configures)

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

DEFAULT = "openai"

KEYED = {
    # table: where the connection goes in its key (first; last in the folded rollups, whose
    # reads across every connection find their rows by the rest of the key)
    "usage": "first",
    "usage_daily": "first",
    "costs": "first",
    "projects": "first",
    "api_keys": "first",
    "users": "first",
    "sync_state": "first",
    "upstream_notes": "first",
    "usage_folded": "last",
    "costs_folded": "last",
}

FOLDED_TOTALS = {
    # the new grouping "connection" of each rollup, summed from a grouping every row has
    "usage_folded": "source",
    "costs_folded": "line_item",
}


def upgrade() -> None:
    op.create_table(
        "connections",
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("first_seen_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_connections"),
    )
    inspector = sa.inspect(op.get_bind())
    for table, where in KEYED.items():
        key = inspector.get_pk_constraint(table)["constrained_columns"]
        key = ["connection", *key] if where == "first" else [*key, "connection"]
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("connection", sa.String(100), nullable=False, server_default=DEFAULT)
            )
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
        if op.get_bind().dialect.name == "postgresql":
            # (SQLite would copy the table once more for it: the default stays there, unused.)
            op.alter_column(table, "connection", server_default=None)
    bind = op.get_bind()
    for table, grouping in FOLDED_TOTALS.items():
        columns = [c["name"] for c in sa.inspect(bind).get_columns(table)]
        folded_key = ("hours", "start", "grouping", "value", "connection")
        summed = [c for c in columns if c not in folded_key]
        names = ", ".join(f'"{c}"' for c in summed)
        sums = ", ".join(f'SUM("{c}")' for c in summed)
        # This migration's own names only: nothing from outside goes into the statement.
        into = f'{table} ("hours", "start", "grouping", "value", "connection", {names})'
        picked = f"\"hours\", \"start\", 'connection', '{DEFAULT}', '{DEFAULT}', {sums}"
        which = f'"grouping" = \'{grouping}\' GROUP BY "hours", "start"'
        op.execute(f"INSERT INTO {into} SELECT {picked} FROM {table} WHERE {which}")  # noqa: S608
    stored = bind.execute(
        sa.text("SELECT 1 FROM sync_state UNION SELECT 1 FROM usage UNION SELECT 1 FROM costs")
    ).first()
    if stored is not None:
        op.execute(
            sa.text(
                "INSERT INTO connections (name, provider, first_seen_at) VALUES (:n, :p, :t)"
            ).bindparams(n=DEFAULT, p="openai", t=int(time.time()))
        )


def downgrade() -> None:
    for table in FOLDED_TOTALS:
        op.execute(f"DELETE FROM {table} WHERE \"grouping\" = 'connection'")  # noqa: S608
    inspector = sa.inspect(op.get_bind())
    for table in KEYED:
        op.execute(f"DELETE FROM {table} WHERE connection <> '{DEFAULT}'")  # noqa: S608
        key = inspector.get_pk_constraint(table)["constrained_columns"]
        key = [c for c in key if c != "connection"]
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f"pk_{table}", type_="primary")
            batch.create_primary_key(f"pk_{table}", key)
            batch.drop_column("connection")
    op.drop_table("connections")
