"""Capacity ledger and typed job state: holds name their pool and expected end; jobs carry
cancel_requested and migration_target instead of encoding them in `reason`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Plain ADD COLUMN (no table copy): SQLite would refuse to drop `jobs` while other tables
    # reference it with foreign keys on.
    op.add_column(
        "jobs",
        sa.Column("cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
    )
    op.add_column("jobs", sa.Column("migration_target", sa.String(), nullable=True))
    op.add_column("jobs", sa.Column("pool", sa.String(), nullable=False, server_default=""))
    op.add_column(
        "holds",
        sa.Column("expected_end_unix_ms", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_index("ix_holds_site", "holds", ["site"])
    # Typed fields replace the reason prefixes older brokers wrote.
    op.execute(
        "UPDATE jobs SET cancel_requested = true, reason = '' WHERE reason = 'cancel requested'"
    )
    op.execute(
        "UPDATE jobs SET migration_target = substr(reason, 14), reason = '' "
        "WHERE state = 'migrating' AND reason LIKE 'migrating to %'"
    )


def downgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.drop_index("ix_holds_site")
        batch.drop_column("expected_end_unix_ms")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("pool")
        batch.drop_column("migration_target")
        batch.drop_column("cancel_requested")
