"""alerts that fired and their deliveries

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts_sent",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("org", sa.String(length=100), nullable=False),
        sa.Column("dedupe_key", sa.String(length=400), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("period", sa.String(length=20), nullable=False),
        sa.Column("fired_at", sa.BigInteger(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("superseded", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts_sent")),
        sa.UniqueConstraint("org", "dedupe_key", name=op.f("uq_alerts_sent_org_dedupe_key")),
    )
    with op.batch_alter_table("alerts_sent") as batch:
        batch.create_index(batch.f("ix_alerts_sent_fired_at"), ["fired_at"], unique=False)
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("channel_label", sa.Text(), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.BigInteger(), nullable=False),
        sa.Column("claimed_until", sa.BigInteger(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts_sent.id"],
            name=op.f("fk_alert_deliveries_alert_id_alerts_sent"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
        sa.UniqueConstraint(
            "alert_id",
            "channel",
            "recipient",
            name=op.f("uq_alert_deliveries_alert_id_channel_recipient"),
        ),
    )
    with op.batch_alter_table("alert_deliveries") as batch:
        batch.create_index(batch.f("ix_alert_deliveries_alert_id"), ["alert_id"], unique=False)
        batch.create_index(batch.f("ix_alert_deliveries_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alerts_sent")
