"""Broker replicas: the roster of replicas sharing the database, and when a lease's current
term began (the leader's `since`).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("broker_id", sa.String(64), primary_key=True),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("agent_address", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("started_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_unix_ms", sa.BigInteger(), nullable=False),
    )
    # Plain ADD COLUMN (no table copy), as in 0003 and 0004; leases taken before this
    # revision read 0 ("unknown") until their next term.
    op.add_column(
        "rebalance_leases",
        sa.Column("acquired_unix_ms", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    with op.batch_alter_table("rebalance_leases") as batch:
        batch.drop_column("acquired_unix_ms")
    op.drop_table("replicas")
