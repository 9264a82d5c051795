"""Automatic retry and alerts: retry settings per environment, retry runs told apart, alert channels and sent alerts.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("retry_max_tries", sa.Integer, nullable=False, server_default="4"))
        batch.add_column(sa.Column("retry_wait_minutes", sa.Integer, nullable=False, server_default="60"))
        batch.add_column(sa.Column("retry_batch_size", sa.Integer, nullable=False, server_default="500"))
        batch.add_column(sa.Column("retry_every", sa.String(8), nullable=False, server_default="hourly"))
        batch.add_column(sa.Column("last_retry_at", TS))
        batch.add_column(sa.Column("disconnect_alert_minutes", sa.Integer, nullable=False, server_default="15"))
    with op.batch_alter_table("resyncs") as batch:
        batch.add_column(sa.Column("kind", sa.String(8), nullable=False, server_default="manual"))
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", sa.String(63)),
        sa.Column("workflow", sa.String(63)),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("events", sa.Text, nullable=False, server_default="[]"),
        sa.Column("daily_summary", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("skip_empty_summary", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "alerts_sent",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel_id", sa.Integer, nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(63)),
        sa.Column("environment", sa.String(63)),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("sent_at", TS, nullable=False),
        sa.UniqueConstraint("channel_id", "dedupe_key", name="uq_alert_once"),
    )


def downgrade() -> None:
    op.drop_table("alerts_sent")
    op.drop_table("alert_channels")
    with op.batch_alter_table("resyncs") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("environments") as batch:
        for name in (
            "disconnect_alert_minutes",
            "last_retry_at",
            "retry_every",
            "retry_batch_size",
            "retry_wait_minutes",
            "retry_max_tries",
        ):
            batch.drop_column(name)
