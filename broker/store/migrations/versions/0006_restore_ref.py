"""The checkpoint a job's next attempt restores from (the last one an attempt exported), and
whether a job's move stops it with a checkpoint.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy), as in 0003 and 0004: `jobs` is referenced by foreign keys.
    op.add_column(
        "jobs",
        sa.Column("restore_ref", sa.Text(), nullable=False, server_default=""),
    )
    op.add_column(
        "jobs",
        sa.Column("migration_checkpoint", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("migration_checkpoint")
        batch.drop_column("restore_ref")
