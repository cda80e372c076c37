"""Initial schema: jobs, idempotency keys, job events, holds, sites and the meta counters.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    _create_jobs()
    _create_idempotency_keys()
    _create_job_events()
    _create_holds()
    _create_sites()
    meta = op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(meta, [{"key": "event_sequence", "value": 0}])


def downgrade() -> None:
    for name in ("meta", "sites", "holds", "job_events", "idempotency_keys", "jobs"):
        op.drop_table(name)


def _create_jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("job_id", sa.String(), primary_key=True),
        sa.Column("created_seq", sa.BigInteger(), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("request_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("site", sa.String(), nullable=True),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("placement_json", sa.Text(), nullable=True),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("created_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_unix_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ux_jobs_created_seq", "jobs", ["created_seq"], unique=True)
    op.create_index("ix_jobs_tenant_created", "jobs", ["tenant", "created_seq"])
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_seq"])
    op.create_index("ix_jobs_kind", "jobs", ["kind"])
    op.create_index("ix_jobs_site", "jobs", ["site"])


def _create_idempotency_keys() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("request_id", sa.String(), primary_key=True),
        sa.Column("tenant", sa.String(), primary_key=True),
        sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.job_id"), nullable=False),
        sa.Column("spec_sha256", sa.String(), nullable=False),
    )


def _create_job_events() -> None:
    op.create_table(
        "job_events",
        sa.Column("sequence", _BIG_ID, primary_key=True, autoincrement=False),
        sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.job_id"), nullable=False),
        sa.Column("tenant", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("time_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("site", sa.String(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
    )
    op.create_index("ix_job_events_job_sequence", "job_events", ["job_id", "sequence"])
    op.create_index("ix_job_events_tenant_sequence", "job_events", ["tenant", "sequence"])


def _create_holds() -> None:
    op.create_table(
        "holds",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("job_id", sa.String(), sa.ForeignKey("jobs.job_id"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("site", sa.String(), nullable=False),
        sa.Column("accelerator", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("cpu_cores", sa.Float(), nullable=False),
        sa.Column("memory_gb", sa.Float(), nullable=False),
    )
    op.create_index("ix_holds_job_id", "holds", ["job_id"])


def _create_sites() -> None:
    op.create_table(
        "sites",
        sa.Column("site_id", sa.String(), primary_key=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("last_report_unix_ms", sa.BigInteger(), nullable=False),
        sa.Column("report_json", sa.Text(), nullable=False),
        sa.Column("executor", sa.String(), nullable=False),
        sa.Column("agent_version", sa.String(), nullable=False),
        sa.Column("agent_epoch", sa.String(), nullable=False),
        sa.Column("drained", sa.Boolean(), nullable=False),
    )
