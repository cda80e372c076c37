"""The roster of broker replicas sharing one database, and who leads them (the "leader" lease)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, RowMapping

from broker.store import tables
from broker.store.engine import writer

LEADER_LEASE = "leader"
"""Name of the lease whose holder (a broker id) is the leader; its token is the epoch."""

ROLES = ("leader", "follower")
"""The roles a replica records."""

BROKER_ID_MAX_CHARS = 64
"""Longest broker id the roster stores (its primary key column)."""


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    """One replica as it last recorded itself.

    `address` serves clients, `agent_address` agents; `epoch` is the leadership epoch it
    leads under (0 for a follower); times are Unix milliseconds of the replica's clock.
    """

    broker_id: str
    address: str
    agent_address: str
    role: str
    epoch: int
    started_unix_ms: int
    last_seen_unix_ms: int


@dataclass(frozen=True, slots=True)
class LeaderRecord:
    """The live leader: its lease's holder and term, with the addresses it recorded.

    `epoch` is the leader lease's fencing token; `since_unix_ms` when that term began (0 if
    the lease predates the column). The addresses are "" while the holder has no roster row.
    """

    broker_id: str
    address: str
    agent_address: str
    epoch: int
    since_unix_ms: int


class SqlReplicaRoster:
    """Replicas' records in the `replicas` table, read together with the leader lease.

    Each replica upserts its own row on every heartbeat; readers filter by `last_seen` to
    leave out replicas that stopped. Safe to share between threads.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], int]) -> None:
        """Use `engine`, whose database is already migrated; `clock` reads Unix time in ms."""
        self._engine = engine
        self._writer = writer(engine)
        self._clock = clock

    def record(self, replica: ReplicaRecord) -> None:
        """Insert or replace the row of `replica.broker_id`.

        Raises ValueError for an empty or too long broker id or an unknown role.
        """
        if not replica.broker_id or len(replica.broker_id) > BROKER_ID_MAX_CHARS:
            raise ValueError(
                f"broker_id must have 1 to {BROKER_ID_MAX_CHARS} characters,"
                f" got {replica.broker_id!r}"
            )
        if replica.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {replica.role!r}")
        with self._writer.begin() as connection:
            _upsert(connection, replica)

    def replicas(self, seen_after_unix_ms: int) -> list[ReplicaRecord]:
        """The replicas last seen after `seen_after_unix_ms`, ordered by broker id."""
        r = tables.replicas
        query = select(r).where(r.c.last_seen_unix_ms > seen_after_unix_ms).order_by(r.c.broker_id)
        with self._engine.connect() as connection:
            return [_replica_from_row(row) for row in connection.execute(query).mappings()]

    def forget(self, broker_id: str) -> None:
        """Delete the row of `broker_id` (a replica shutting down); no-op if there is none."""
        r = tables.replicas
        with self._writer.begin() as connection:
            connection.execute(delete(r).where(r.c.broker_id == broker_id))

    def leader(self, now_unix_ms: int | None = None) -> LeaderRecord | None:
        """The holder of the live leader lease at `now_unix_ms` (default: the clock), or None
        when nobody holds it (never taken, expired or released)."""
        now = self._clock() if now_unix_ms is None else now_unix_ms
        leases, r = tables.leases, tables.replicas
        query = (
            select(
                leases.c.holder,
                leases.c.fencing_token,
                leases.c.acquired_unix_ms,
                r.c.address,
                r.c.agent_address,
            )
            .select_from(leases.outerjoin(r, r.c.broker_id == leases.c.holder))
            .where(leases.c.name == LEADER_LEASE, leases.c.expires_unix_ms > now)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            return None
        return LeaderRecord(
            broker_id=row["holder"],
            address=row["address"] or "",
            agent_address=row["agent_address"] or "",
            epoch=int(row["fencing_token"]),
            since_unix_ms=int(row["acquired_unix_ms"]),
        )


def _upsert(connection: Connection, replica: ReplicaRecord) -> None:
    values = {
        "broker_id": replica.broker_id,
        "address": replica.address,
        "agent_address": replica.agent_address,
        "role": replica.role,
        "epoch": replica.epoch,
        "started_unix_ms": replica.started_unix_ms,
        "last_seen_unix_ms": replica.last_seen_unix_ms,
    }
    changes = {k: v for k, v in values.items() if k != "broker_id"}
    if connection.dialect.name == "postgresql":
        pg = postgresql.insert(tables.replicas).values(values)
        connection.execute(pg.on_conflict_do_update(index_elements=["broker_id"], set_=changes))
    else:
        lite = sqlite.insert(tables.replicas).values(values)
        connection.execute(lite.on_conflict_do_update(index_elements=["broker_id"], set_=changes))


def _replica_from_row(row: RowMapping) -> ReplicaRecord:
    return ReplicaRecord(
        broker_id=row["broker_id"],
        address=row["address"],
        agent_address=row["agent_address"],
        role=row["role"],
        epoch=int(row["epoch"]),
        started_unix_ms=int(row["started_unix_ms"]),
        last_seen_unix_ms=int(row["last_seen_unix_ms"]),
    )
