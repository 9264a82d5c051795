"""Tries of the Try page: the request a flowlink_try run fetches samples for, and its result until the page has it.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("requested_by", sa.String(255), nullable=False),
        sa.Column("environment", sa.String(63)),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("sample_limit", sa.Integer, nullable=False),
        sa.Column("ids", sa.Text),
        sa.Column("run_id", sa.String(250)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("ended_at", TS),
    )


def downgrade() -> None:
    op.drop_table("tries")
