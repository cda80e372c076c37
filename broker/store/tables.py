"""SQL table definitions of the broker store; they never leave the broker.store package."""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Column, Float, Index, Integer, MetaData, String, Table, Text
from sqlmodel import Field, SQLModel

# SQLite only treats "INTEGER PRIMARY KEY" as the rowid; PostgreSQL needs 64 bits.
BigId = BigInteger().with_variant(Integer(), "sqlite")

EVENT_SEQUENCE_KEY = "event_sequence"
"""Row of the meta table holding the last event sequence number handed out."""


class JobRow(SQLModel, table=True):
    """One job: its spec as canonical JSON plus the columns used to filter and order."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ux_jobs_created_seq", "created_seq", unique=True),
        Index("ix_jobs_tenant_created", "tenant", "created_seq"),
        Index("ix_jobs_state_created", "state", "created_seq"),
    )

    job_id: str = Field(primary_key=True)
    created_seq: int = Field(sa_type=BigInteger)
    tenant: str
    request_id: str
    kind: str = Field(index=True)
    state: str
    site: str | None = Field(default=None, index=True)
    spec_json: str = Field(sa_type=Text)
    attempt: int = 0
    reason: str = Field(default="", sa_type=Text)
    exit_code: int | None = None
    placement_json: str | None = Field(default=None, sa_type=Text)
    cancel_requested: bool = False
    migration_target: str | None = Field(default=None)
    pool: str = Field(default="")
    start_failures_json: str = Field(default="[]", sa_type=Text)
    not_before_unix_ms: int = Field(default=0, sa_type=BigInteger)
    migration_checkpoint: bool = False
    restore_ref: str = Field(default="", sa_type=Text)
    last_sequence: int = Field(sa_type=BigInteger)
    created_unix_ms: int = Field(sa_type=BigInteger)
    updated_unix_ms: int = Field(sa_type=BigInteger)


class IdempotencyKeyRow(SQLModel, table=True):
    """A client request id, scoped by tenant, and the job and spec it first created."""

    __tablename__ = "idempotency_keys"

    # request_id leads the key: it is the selective column (client-chosen, usually unique),
    # so a batch lookup stays an index probe even for a tenant with millions of jobs.
    request_id: str = Field(primary_key=True)
    tenant: str = Field(primary_key=True)
    job_id: str = Field(foreign_key="jobs.job_id")
    spec_sha256: str


class JobEventRow(SQLModel, table=True):
    """One state transition; `sequence` is assigned by the store in commit order."""

    __tablename__ = "job_events"
    __table_args__ = (
        Index("ix_job_events_job_sequence", "job_id", "sequence"),
        Index("ix_job_events_tenant_sequence", "tenant", "sequence"),
    )

    sequence: int = Field(sa_column=Column(BigId, primary_key=True, autoincrement=False))
    job_id: str = Field(foreign_key="jobs.job_id")
    tenant: str
    kind: str
    state: str
    cause: str = Field(sa_type=Text)
    time_unix_ms: int = Field(sa_type=BigInteger)
    site: str | None = Field(default=None)
    attempt: int = 0
    message: str = Field(default="", sa_type=Text)
    exit_code: int | None = None


class HoldRow(SQLModel, table=True):
    """A line of the capacity ledger: cards of one pool held at a site for one attempt.

    `accelerator` is the pool's model (the domain calls it `pool`).
    """

    __tablename__ = "holds"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.job_id", index=True)
    attempt: int
    site: str = Field(index=True)
    accelerator: str
    count: int
    cpu_cores: float
    memory_gb: float
    expected_end_unix_ms: int = Field(default=0, sa_type=BigInteger)


class SiteRow(SQLModel, table=True):
    """What the broker remembers of a site between restarts."""

    __tablename__ = "sites"

    site_id: str = Field(primary_key=True)
    status: str
    last_report_unix_ms: int = Field(default=0, sa_type=BigInteger)
    report_json: str = Field(default="{}", sa_type=Text)
    executor: str = Field(default="")
    agent_version: str = Field(default="")
    agent_epoch: str = Field(default="")
    drained: bool = False


class MetaRow(SQLModel, table=True):
    """Named counters of the store (the event sequence)."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True)
    value: int = Field(default=0, sa_type=BigInteger)


class RebalanceRunRow(SQLModel, table=True):
    """One rebalancing run: trigger, timing and savings, with its moves and errors as JSON."""

    __tablename__ = "rebalance_runs"
    __table_args__ = (Index("ix_rebalance_runs_started", "started_unix_ms", "run_id"),)

    run_id: str = Field(sa_column=Column(String(64), primary_key=True))
    trigger: str = Field(sa_type=String(64))
    dry_run: bool
    started_unix_ms: int = Field(sa_type=BigInteger)
    ended_unix_ms: int = Field(sa_type=BigInteger)
    expected_savings_cny: float = Field(sa_type=Float)
    realised_savings_cny: float = Field(sa_type=Float)
    moves_json: str = Field(sa_type=Text)
    errors_json: str = Field(sa_type=Text)


class RebalanceFireRow(SQLModel, table=True):
    """A scheduled fire (`label@time`) claimed by one replica, so it runs at most once."""

    __tablename__ = "rebalance_fires"

    fire: str = Field(sa_column=Column(String(96), primary_key=True))
    holder: str = Field(sa_type=String(255))
    claimed_unix_ms: int = Field(sa_type=BigInteger)


class LeaseRow(SQLModel, table=True):
    """A named lease: its holder, its fencing token, when it expires and when its current
    term began.

    The table keeps the name it got when only rebalancing had a lease; the leader's lease
    ("leader") is a row of it too.
    """

    __tablename__ = "rebalance_leases"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    holder: str = Field(sa_type=String(255))
    fencing_token: int = Field(sa_type=BigInteger)
    expires_unix_ms: int = Field(sa_type=BigInteger)
    acquired_unix_ms: int = Field(default=0, sa_type=BigInteger)


class ReplicaRow(SQLModel, table=True):
    """A broker replica sharing the database: where it serves, its role and when last seen."""

    __tablename__ = "replicas"

    broker_id: str = Field(sa_column=Column(String(64), primary_key=True))
    address: str = Field(sa_type=String(255))
    agent_address: str = Field(sa_type=String(255))
    role: str = Field(sa_type=String(16))
    epoch: int = Field(sa_type=BigInteger)
    started_unix_ms: int = Field(sa_type=BigInteger)
    last_seen_unix_ms: int = Field(sa_type=BigInteger)


class DemandRow(SQLModel, table=True):
    """The latest user demand reported for an inference job: a weight per user region."""

    __tablename__ = "job_demand"

    job_id: str = Field(primary_key=True, foreign_key="jobs.job_id")
    weights_json: str = Field(sa_type=Text)
    reported_unix_ms: int = Field(sa_type=BigInteger)


class AttemptRunRow(SQLModel, table=True):
    """When and where one attempt of a job ran, on which cards, and how far it is priced.

    Written by the transitions that start and end the attempt (in their transaction), advanced
    by usage accounting; `settled` once it ended and is priced up to its end.
    """

    __tablename__ = "attempt_runs"
    __table_args__ = (Index("ix_attempt_runs_settled", "settled"),)

    job_id: str = Field(primary_key=True)
    attempt: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    tenant: str
    site: str
    pools_json: str = Field(sa_type=Text)
    cpu_cores: float = Field(sa_type=Float)
    started_unix_ms: int = Field(sa_type=BigInteger)
    ended_unix_ms: int = Field(default=0, sa_type=BigInteger)
    accounted_until_unix_ms: int = Field(sa_type=BigInteger)
    settled: bool = False


class UsageRow(SQLModel, table=True):
    """Priced usage of one attempt's cards of one model on one day (CST)."""

    __tablename__ = "usage"
    __table_args__ = (
        Index("ix_usage_day_tenant", "day", "tenant"),
        Index("ix_usage_tenant_day", "tenant", "day"),
    )

    job_id: str = Field(primary_key=True)
    attempt: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    model: str = Field(primary_key=True)
    day: str = Field(sa_column=Column(String(10), primary_key=True))
    tenant: str
    site: str
    cards: int
    card_hours: float = Field(sa_type=Float)
    kwh: float = Field(sa_type=Float)
    carbon_kg: float = Field(sa_type=Float)
    card_cny: float = Field(sa_type=Float)
    energy_cny: float = Field(sa_type=Float)


def _table(model: type[SQLModel]) -> Table:
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


jobs = _table(JobRow)
idempotency_keys = _table(IdempotencyKeyRow)
job_events = _table(JobEventRow)
holds = _table(HoldRow)
sites = _table(SiteRow)
meta = _table(MetaRow)
rebalance_runs = _table(RebalanceRunRow)
rebalance_fires = _table(RebalanceFireRow)
leases = _table(LeaseRow)
replicas = _table(ReplicaRow)
job_demand = _table(DemandRow)
attempt_runs = _table(AttemptRunRow)
usage = _table(UsageRow)

metadata: MetaData = SQLModel.metadata
