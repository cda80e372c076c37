"""SqlLease: a named lease row taken and renewed with conditional writes (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Engine, and_, case, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from broker.store import tables
from broker.store.engine import writer
from broker.store.fencing import fence_holds
from broker.store.protocol import Fence
from broker.store.rebalancing import LeaseState

log = logging.getLogger(__name__)


class SqlLease:
    """One lease row per name (see broker.store.rebalancing.Lease for the invariants).

    Taking it is one conditional UPDATE (the row is free, expired, or already ours) that bumps
    the token unless a live holder renews; the very first taker INSERTs the row, and a racing
    second INSERT fails on the primary key, so exactly one replica wins each term. A new term
    also stamps `acquired_unix_ms` with the taker's clock; a renewal keeps it, so it says
    since when the holder has held the lease under its current token.
    """

    def __init__(self, engine: Engine, name: str, *, clock: Callable[[], int]) -> None:
        """Use `engine`, whose database is already migrated; `clock` reads Unix time in ms."""
        self._engine = engine
        self._writer = writer(engine)
        self._name = name
        self._clock = clock

    @property
    def name(self) -> str:
        """See Lease.name."""
        return self._name

    def try_acquire(self, holder: str, ttl_s: float) -> int | None:
        """See Lease.try_acquire."""
        leases = tables.leases
        now = self._clock()
        expires = now + int(ttl_s * 1000)
        renewal = and_(leases.c.holder == holder, leases.c.expires_unix_ms > now)
        statement = (
            update(leases)
            .where(leases.c.name == self._name)
            .where(or_(leases.c.holder == holder, leases.c.expires_unix_ms <= now))
            .values(
                holder=holder,
                expires_unix_ms=expires,
                fencing_token=case(
                    (renewal, leases.c.fencing_token), else_=leases.c.fencing_token + 1
                ),
                acquired_unix_ms=case((renewal, leases.c.acquired_unix_ms), else_=now),
            )
            .returning(leases.c.fencing_token)
        )
        with self._writer.begin() as connection:
            token = connection.execute(statement).scalar_one_or_none()
        if token is not None:
            return int(token)
        return self._insert_first(holder, now, expires)

    def _insert_first(self, holder: str, now_unix_ms: int, expires_unix_ms: int) -> int | None:
        row = {
            "name": self._name,
            "holder": holder,
            "fencing_token": 1,
            "expires_unix_ms": expires_unix_ms,
            "acquired_unix_ms": now_unix_ms,
        }
        try:
            with self._writer.begin() as connection:
                connection.execute(insert(tables.leases).values(**row))
        except IntegrityError:
            return None  # the row exists: another replica holds the lease (or just created it)
        log.info("lease created name=%s holder=%s token=1", self._name, holder)
        return 1

    def seize(self, holder: str, ttl_s: float) -> int:
        """See Lease.seize."""
        leases = tables.leases
        now = self._clock()
        statement = (
            update(leases)
            .where(leases.c.name == self._name)
            .values(
                holder=holder,
                expires_unix_ms=now + int(ttl_s * 1000),
                fencing_token=leases.c.fencing_token + 1,
                acquired_unix_ms=now,
            )
            .returning(leases.c.fencing_token)
        )
        with self._writer.begin() as connection:
            token = connection.execute(statement).scalar_one_or_none()
        if token is not None:
            log.info("lease seized name=%s holder=%s token=%s", self._name, holder, token)
            return int(token)
        first = self._insert_first(holder, now, now + int(ttl_s * 1000))
        return first if first is not None else self.seize(holder, ttl_s)

    def check(self, token: int) -> bool:
        """See Lease.check."""
        with self._engine.connect() as connection:
            return fence_holds(connection, Fence(self._name, token), self._clock())

    def release(self, holder: str, token: int) -> bool:
        """See Lease.release."""
        leases = tables.leases
        statement = (
            update(leases)
            .where(leases.c.name == self._name)
            .where(leases.c.holder == holder)
            .where(leases.c.fencing_token == token)
            .values(expires_unix_ms=0)
        )
        with self._writer.begin() as connection:
            return connection.execute(statement).rowcount == 1

    def current(self) -> LeaseState | None:
        """See Lease.current."""
        leases = tables.leases
        query = select(leases).where(leases.c.name == self._name)
        with self._engine.connect() as connection:
            row = connection.execute(query).mappings().first()
        if row is None:
            return None
        return LeaseState(
            row["name"],
            row["holder"],
            int(row["fencing_token"]),
            int(row["expires_unix_ms"]),
            int(row["acquired_unix_ms"]),
        )
