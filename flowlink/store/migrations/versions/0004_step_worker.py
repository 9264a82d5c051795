"""Which worker ran each step: its host name and queue (the environment's queue).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshot_steps") as batch:
        batch.add_column(sa.Column("hostname", sa.String(255)))
        batch.add_column(sa.Column("queue", sa.String(63)))


def downgrade() -> None:
    with op.batch_alter_table("snapshot_steps") as batch:
        batch.drop_column("queue")
        batch.drop_column("hostname")
