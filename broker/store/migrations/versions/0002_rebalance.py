"""Rebalancing: run records, claimed schedule fires and named leases with fencing tokens.

Brokers before this revision created these three tables themselves when rebalancing started,
with exactly this layout. Such a table is adopted as it is, rows included; only missing ones
are created.

Revision ID: 0002
Revises: 0001
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TABLES = ("rebalance_runs", "rebalance_fires", "rebalance_leases")


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "rebalance_runs" not in existing:
        _create_runs()
    if "rebalance_fires" not in existing:
        op.create_table(
            "rebalance_fires",
            sa.Column("fire", sa.String(96), primary_key=True),
            sa.Column("holder", sa.String(255), nullable=False),
            sa.Column("claimed_unix_ms", sa.BigInteger(), nullable=False),
        )
    if "rebalance_leases" not in existing:
        op.create_table(
            "rebalance_leases",
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("holder", sa.String(255), nullable=False),
            sa.Column("fencing_token", sa.BigInteger(), nullable=False),
            sa.Column("expires_unix_ms", sa.BigInteger(), nullable=False),
        )


def downgrade() -> None:
    for name in reversed(_TABLES):
        op.drop_table(name)


def _create_runs() -> None:
    op.create_table(
        "rebalance_runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("trigger", sa.String(64), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("started_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("expected_savings_cny", sa.Float(), nullable=False),
        sa.Column("realised_savings_cny", sa.Float(), nullable=False),
        sa.Column("moves_json", sa.Text(), nullable=False),
        sa.Column("errors_json", sa.Text(), nullable=False),
    )
    op.create_index("ix_rebalance_runs_started", "rebalance_runs", ["started_unix_ms", "run_id"])
