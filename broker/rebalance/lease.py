"""A named database lease with a fencing token, so one broker replica at a time runs rebalancing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from broker.store.fencing import lease_metadata, leases

log = logging.getLogger(__name__)

metadata = lease_metadata


@dataclass(frozen=True, slots=True)
class LeaseState:
    """The lease row as stored."""

    name: str
    holder: str
    fencing_token: int
    expires_unix_ms: int


class DatabaseLease:
    """One lease row per name, taken and renewed with conditional writes (SQLite and PostgreSQL).

    Invariants: the fencing token only grows; it grows exactly when the lease changes hands or
    is retaken after expiring, so at most one holder ever gets a given token, and a holder that
    renews in time keeps its token. Expiry uses the replicas' clocks: keep the TTL well above
    their skew. Writers guard their effects with `check(token)`, so a replica that stalled past
    its lease cannot write after another took over.
    """

    def __init__(
        self, engine: Engine, name: str = "rebalance", *, clock: Callable[[], float] = time.time
    ) -> None:
        self.engine = engine
        self.name = name
        self._clock = clock
        metadata.create_all(engine, tables=[leases], checkfirst=True)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def try_acquire(self, holder: str, ttl_s: float) -> int | None:
        """Take or renew the lease for `ttl_s` s: the fencing token, or None if another holds it."""
        now = self._now_ms()
        expires = now + int(ttl_s * 1000)
        live_same_holder = sa.and_(leases.c.holder == holder, leases.c.expires_unix_ms > now)
        update = (
            leases.update()
            .where(leases.c.name == self.name)
            .where(sa.or_(leases.c.holder == holder, leases.c.expires_unix_ms <= now))
            .values(
                holder=holder,
                expires_unix_ms=expires,
                fencing_token=sa.case(
                    (live_same_holder, leases.c.fencing_token), else_=leases.c.fencing_token + 1
                ),
            )
            .returning(leases.c.fencing_token)
        )
        with self.engine.begin() as conn:
            token = conn.execute(update).scalar_one_or_none()
        if token is not None:
            return int(token)
        return self._insert_first(holder, expires)

    def _insert_first(self, holder: str, expires_unix_ms: int) -> int | None:
        row = {
            "name": self.name,
            "holder": holder,
            "fencing_token": 1,
            "expires_unix_ms": expires_unix_ms,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(leases.insert().values(**row))
        except IntegrityError:
            return None  # the row exists: another replica holds the lease (or just created it)
        log.info("lease created name=%s holder=%s token=1", self.name, holder)
        return 1

    def check(self, token: int, *, conn: Connection | None = None) -> bool:
        """True if `token` is the current token and the lease has not expired.

        Pass the connection of the transaction that writes: the row is then read with a shared
        lock (PostgreSQL `FOR SHARE`), so a takeover waits until that write commits and the
        check cannot go stale before it.
        """
        query = sa.select(leases.c.fencing_token, leases.c.expires_unix_ms).where(
            leases.c.name == self.name
        )
        if conn is not None:
            row = conn.execute(query.with_for_update(read=True)).first()
        else:
            with self.engine.connect() as own:
                row = own.execute(query).first()
        return row is not None and int(row[0]) == token and int(row[1]) > self._now_ms()

    def release(self, holder: str, token: int) -> bool:
        """Give up the lease early (on shutdown); the next taker gets a new token."""
        with self.engine.begin() as conn:
            result = conn.execute(
                leases.update()
                .where(leases.c.name == self.name)
                .where(leases.c.holder == holder)
                .where(leases.c.fencing_token == token)
                .values(expires_unix_ms=0)
            )
        return result.rowcount == 1

    def current(self) -> LeaseState | None:
        """The stored lease row, if any."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == self.name)).first()
        if row is None:
            return None
        return LeaseState(row.name, row.holder, int(row.fencing_token), int(row.expires_unix_ms))
