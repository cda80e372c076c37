"""The broker's durable store: the Store contract and its SQL implementation, opened by URL.

Rebalancing keeps its lease and run records in the same database, through `open_rebalance_store`.
Submission batches can be written by a child process on the same database (`SubmitProcess`).
Replicas sharing a PostgreSQL database coordinate through `open_coordination` (leader lease,
replica roster, change feed); a SQLite database admits one replica (`claim_single_replica`).
"""

from __future__ import annotations

from collections.abc import Callable

from broker.store.coordination import Coordination, open_coordination
from broker.store.engine import create_store_engine
from broker.store.leases import SqlLease
from broker.store.migrate import upgrade_to_head
from broker.store.notify import ChangeFeed
from broker.store.protocol import (
    Fence,
    FenceLostError,
    Hold,
    JobFilter,
    NewJob,
    Page,
    SiteRecord,
    Store,
    SubmitOutcome,
    Transition,
)
from broker.store.rebalancing import Lease, LeaseState, RebalanceStore, RunRecords
from broker.store.replicas import LeaderRecord, ReplicaRecord, SqlReplicaRoster
from broker.store.runs import SqlRebalanceStore
from broker.store.single_replica import (
    ReplicaConflictError,
    SingleReplicaClaim,
    claim_single_replica,
)
from broker.store.sql import SqlStore, wall_clock_ms
from broker.store.submit_process import SubmitProcess, WorkerStartError

__all__ = [
    "ChangeFeed",
    "Coordination",
    "Fence",
    "FenceLostError",
    "Hold",
    "JobFilter",
    "LeaderRecord",
    "Lease",
    "LeaseState",
    "NewJob",
    "Page",
    "RebalanceStore",
    "ReplicaConflictError",
    "ReplicaRecord",
    "RunRecords",
    "SingleReplicaClaim",
    "SiteRecord",
    "SqlLease",
    "SqlRebalanceStore",
    "SqlReplicaRoster",
    "SqlStore",
    "Store",
    "SubmitOutcome",
    "SubmitProcess",
    "Transition",
    "WorkerStartError",
    "claim_single_replica",
    "open_coordination",
    "open_rebalance_store",
    "open_store",
]


def open_store(url: str, *, clock: Callable[[], int] = wall_clock_ms) -> SqlStore:
    """Open the store at `url`, creating or upgrading its schema to the newest revision.

    `url` is a SQLAlchemy URL: `sqlite:///path.db` (WAL, synchronous=FULL), `sqlite://`
    for a private in-memory database, or `postgresql+psycopg://user@host:port/db`.
    """
    engine = create_store_engine(url)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlStore(engine, clock=clock)


def open_rebalance_store(
    url: str, *, lease_name: str = "rebalance", clock: Callable[[], int] = wall_clock_ms
) -> SqlRebalanceStore:
    """Open the rebalancing's lease (named `lease_name`) and run records in the store at `url`.

    The schema is created or upgraded as by `open_store`; the connections are their own, so
    lease renewals never queue behind the broker's job writes.
    """
    engine = create_store_engine(url)
    try:
        upgrade_to_head(engine)
    except BaseException:
        engine.dispose()
        raise
    return SqlRebalanceStore(engine, lease_name=lease_name, clock=clock)
