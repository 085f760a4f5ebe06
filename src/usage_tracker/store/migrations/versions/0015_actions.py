"""actions: what budget rules asked to be done at a provider, recorded before it is done

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connection", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("subject", sa.String(400), nullable=False),
        sa.Column("period", sa.String(20), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("previous", sa.Text()),
        sa.Column("last_error", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("decided_by", sa.String(320)),
        sa.Column("decided_at", sa.BigInteger()),
        sa.Column("done_at", sa.BigInteger()),
        sa.Column("resumed_by", sa.String(320)),
        sa.Column("resumed_at", sa.BigInteger()),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_actions")),
        sa.UniqueConstraint(
            "connection",
            "rule",
            "subject",
            "period",
            name=op.f("uq_actions_connection_rule_subject_period"),
        ),
    )
    op.create_index(op.f("ix_actions_state"), "actions", ["state"])


def downgrade() -> None:
    op.drop_index(op.f("ix_actions_state"), table_name="actions")
    op.drop_table("actions")
