"""Why a failed step failed: "records" (it ran to its end, records failed and wait in the bucket) or "step" (it
failed as a whole: a connection missing, a target down, the store lost).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("snapshot_steps") as batch:
        batch.add_column(sa.Column("failure", sa.String(8)))


def downgrade() -> None:
    with op.batch_alter_table("snapshot_steps") as batch:
        batch.drop_column("failure")
