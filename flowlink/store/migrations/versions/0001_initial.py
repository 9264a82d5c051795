"""The first schema: bucket, watermarks, snapshots, data log, feeds, resync requests.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "bucket",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("destination_id", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("last_run", sa.String(250)),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.UniqueConstraint("workflow", "touchpoint", "source_id", name="uq_bucket_record"),
    )
    op.create_index("ix_bucket_status", "bucket", ["workflow", "touchpoint", "status"])
    op.create_table(
        "watermarks",
        sa.Column("workflow", sa.String(63), primary_key=True),
        sa.Column("touchpoint", sa.String(63), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(250)),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "snapshot_steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS),
        sa.Column("count_in", sa.Integer, nullable=False),
        sa.Column("count_out", sa.Integer, nullable=False),
        sa.Column("count_failed", sa.Integer, nullable=False),
        sa.Column("files", sa.Text, nullable=False),
        sa.Column("message", sa.Text),
        sa.UniqueConstraint("workflow", "run_id", "touchpoint", "step", name="uq_snapshot_step"),
    )
    op.create_index("ix_snapshot_run", "snapshot_steps", ["run_id"])
    op.create_table(
        "data_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("step", sa.String(16), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=False),
        sa.Column("destination_id", sa.String(255)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text),
        sa.Column("tries", sa.Integer, nullable=False),
        sa.Column("logged_at", TS, nullable=False),
    )
    op.create_index("ix_data_log_run", "data_log", ["run_id", "touchpoint"])
    op.create_table(
        "feeds",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", TS, nullable=False),
        sa.Column("tag", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(63)),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_feeds_at", "feeds", ["at"])
    op.create_table(
        "resyncs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workflow", sa.String(63), nullable=False),
        sa.Column("touchpoint", sa.String(63), nullable=False),
        sa.Column("source_ids", sa.Text, nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("run_id", sa.String(250)),
    )


def downgrade() -> None:
    for table in ("resyncs", "feeds", "data_log", "snapshot_steps", "watermarks", "bucket"):
        op.drop_table(table)
