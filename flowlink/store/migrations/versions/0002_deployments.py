"""Environments, agent tokens, deployments and their step log.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "environments",
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("pending_timeout", sa.Integer, nullable=False),
        sa.Column("last_heartbeat", TS),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "agent_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("environment", sa.String(63), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("pending_timeout", sa.Integer, nullable=False),
        sa.Column("wait_till", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_deployments_workflow", "deployments", ["workflow", "environment"])
    op.create_table(
        "deployment_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment_id", sa.Integer, nullable=False),
        sa.Column("step", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_deployment_log", "deployment_log", ["deployment_id"])


def downgrade() -> None:
    for table in ("deployment_log", "deployments", "agent_tokens", "environments"):
        op.drop_table(table)
