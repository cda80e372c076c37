"""What broker replicas coordinate through in their database: the leader lease, the roster of
replicas and the feed of committed changes, opened together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from broker.store.engine import create_store_engine
from broker.store.leases import SqlLease
from broker.store.migrate import upgrade_to_head
from broker.store.notify import ChangeFeed
from broker.store.replicas import LEADER_LEASE, SqlReplicaRoster
from broker.store.sql import wall_clock_ms


@dataclass
class Coordination:
    """The leader lease ("leader": holder = broker id, token = leadership epoch), the replica
    roster and the change feed, over an engine of their own, so lease renewals never queue
    behind the broker's job writes."""

    engine: Engine
    leader_lease: SqlLease
    roster: SqlReplicaRoster
    feed: ChangeFeed
    dialect: str
    """"sqlite" or "postgresql"."""

    def close(self) -> None:
        """Close the feed and the engine's connections; idempotent."""
        self.feed.close()
        self.engine.dispose()

    def __enter__(self) -> Coordination:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_coordination(url: str, *, clock: Callable[[], int] = wall_clock_ms) -> Coordination:
    """Open the coordination of the replicas sharing the store at `url`.

    Migrates the database to the newest schema as `open_store` does (a no-op when the broker
    opened its store first), so it works in either order. `clock` reads Unix time in ms for
    the lease and the roster. On in-memory SQLite (`sqlite://`) the engine is a database of
    its own, not the store's: there is only one replica there and nothing to coordinate.
    """
    engine = create_store_engine(url)
    try:
        upgrade_to_head(engine)
        feed = ChangeFeed(url)
    except BaseException:
        engine.dispose()
        raise
    return Coordination(
        engine=engine,
        leader_lease=SqlLease(engine, LEADER_LEASE, clock=clock),
        roster=SqlReplicaRoster(engine, clock=clock),
        feed=feed,
        dialect=engine.dialect.name,
    )
