"""Failed starts of a job: which attempts could not start where and why, and the backoff
before its next placement.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy), as in 0003: `jobs` is referenced by foreign keys.
    op.add_column(
        "jobs",
        sa.Column("start_failures_json", sa.Text(), nullable=False, server_default="[]"),
    )
    op.add_column(
        "jobs",
        sa.Column("not_before_unix_ms", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("not_before_unix_ms")
        batch.drop_column("start_failures_json")
