"""Usage accounting: when and where each attempt ran (attempt_runs) and its priced usage per
model and CST day (usage).

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "attempt_runs",
        sa.Column("job_id", sa.String(), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("pools_json", sa.Text(), nullable=False),
        sa.Column("cpu_cores", sa.Float(), nullable=False),
        sa.Column("started_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("ended_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("accounted_until_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_attempt_runs_settled", "attempt_runs", ["settled"])
    op.create_table(
        "usage",
        sa.Column("job_id", sa.String(), primary_key=True),
        sa.Column("attempt", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("model", sa.String(), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("cards", sa.Integer(), nullable=False),
        sa.Column("card_hours", sa.Float(), nullable=False),
        sa.Column("kwh", sa.Float(), nullable=False),
        sa.Column("carbon_kg", sa.Float(), nullable=False),
        sa.Column("card_cny", sa.Float(), nullable=False),
        sa.Column("energy_cny", sa.Float(), nullable=False),
    )
    op.create_index("ix_usage_day_tenant", "usage", ["day", "tenant"])
    op.create_index("ix_usage_tenant_day", "usage", ["tenant", "day"])
    _open_runs_of_running_attempts()


def _open_runs_of_running_attempts() -> None:
    """Attempts running at the upgrade are accounted from when they started running."""
    bind = op.get_bind()
    running = bind.execute(
        sa.text(
            "SELECT j.job_id, j.attempt, j.tenant, j.site,"
            " (SELECT max(e.time_unix_ms) FROM job_events e WHERE e.job_id = j.job_id"
            "  AND e.attempt = j.attempt AND e.state = 'running') AS started"
            " FROM jobs j WHERE j.state IN ('running', 'migrating') AND j.site IS NOT NULL"
        )
    ).all()
    for job_id, attempt, tenant, site, started in running:
        holds = bind.execute(
            sa.text(
                "SELECT accelerator, count, cpu_cores FROM holds"
                " WHERE job_id = :job_id AND attempt = :attempt"
            ),
            {"job_id": job_id, "attempt": attempt},
        ).all()
        pools: dict[str, int] = {}
        for model, count, _ in holds:
            pools[model] = pools.get(model, 0) + int(count)
        since = int(started or 0)
        bind.execute(
            sa.text(
                "INSERT INTO attempt_runs (job_id, attempt, tenant, site, pools_json, cpu_cores,"
                " started_unix_ms, ended_unix_ms, accounted_until_unix_ms, settled)"
                " VALUES (:job_id, :attempt, :tenant, :site, :pools, :cpu, :since, 0, :since,"
                " false)"
            ),
            {
                "job_id": job_id,
                "attempt": attempt,
                "tenant": tenant,
                "site": site,
                "pools": json.dumps(sorted(pools.items())),
                "cpu": float(sum(float(c) for _, _, c in holds)),
                "since": since,
            },
        )


def downgrade() -> None:
    op.drop_index("ix_usage_tenant_day", "usage")
    op.drop_index("ix_usage_day_tenant", "usage")
    op.drop_table("usage")
    op.drop_index("ix_attempt_runs_settled", "attempt_runs")
    op.drop_table("attempt_runs")
