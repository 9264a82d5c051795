"""Index the bucket by date: the bucket page filters a workflow's records by when they changed.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_bucket_updated", "bucket", ["workflow", "updated_at"])


def downgrade() -> None:
    op.drop_index("ix_bucket_updated", table_name="bucket")
