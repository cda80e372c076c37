"""SqlRunRecords and SqlRebalanceStore: rebalancing's run records and lease, in SQL."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, and_, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from broker.store import tables
from broker.store.codecs import run_from_row, run_to_row
from broker.store.engine import writer
from broker.store.leases import SqlLease
from computenet.rebalance_types import RebalanceRunInfo


class SqlRunRecords:
    """Run records and fire claims (see broker.store.rebalancing.RunRecords)."""

    def __init__(self, engine: Engine) -> None:
        """Use `engine`, whose database is already migrated."""
        self._engine = engine
        self._writer = writer(engine)

    def save_run(self, run: RebalanceRunInfo) -> None:
        """See RunRecords.save_run."""
        runs = tables.rebalance_runs
        row = run_to_row(run)
        with self._writer.begin() as connection:
            key = runs.c.run_id == run.run_id
            if connection.execute(update(runs).where(key).values(**row)).rowcount == 0:
                connection.execute(insert(runs).values(**row))

    def list_runs(self, limit: int = 20, before: str | None = None) -> list[RebalanceRunInfo]:
        """See RunRecords.list_runs; a `limit` below 1 returns nothing."""
        if limit < 1:
            return []
        runs = tables.rebalance_runs
        query = select(runs)
        with self._engine.connect() as connection:
            if before:
                anchor = connection.execute(
                    select(runs.c.started_unix_ms).where(runs.c.run_id == before)
                ).scalar_one_or_none()
                if anchor is None:
                    return []
                started = runs.c.started_unix_ms
                query = query.where(
                    or_(started < anchor, and_(started == anchor, runs.c.run_id < before))
                )
            query = query.order_by(runs.c.started_unix_ms.desc(), runs.c.run_id.desc())
            rows = connection.execute(query.limit(limit)).mappings().all()
        return [run_from_row(row) for row in rows]

    def claim_fire(self, fire: str, holder: str, now_unix_ms: int) -> bool:
        """See RunRecords.claim_fire; the fire's primary key makes the claim atomic."""
        row = {"fire": fire, "holder": holder, "claimed_unix_ms": now_unix_ms}
        try:
            with self._writer.begin() as connection:
                connection.execute(insert(tables.rebalance_fires).values(**row))
        except IntegrityError:
            return False
        return True


class SqlRebalanceStore:
    """The rebalancing's lease and run records over one engine of their own."""

    def __init__(self, engine: Engine, *, lease_name: str, clock: Callable[[], int]) -> None:
        """Use `engine`, whose database is already migrated; `clock` reads Unix time in ms."""
        self._engine = engine
        self._lease = SqlLease(engine, lease_name, clock=clock)
        self._runs = SqlRunRecords(engine)

    @property
    def lease(self) -> SqlLease:
        """See RebalanceStore.lease."""
        return self._lease

    @property
    def runs(self) -> SqlRunRecords:
        """See RebalanceStore.runs."""
        return self._runs

    def close(self) -> None:
        """See RebalanceStore.close."""
        self._engine.dispose()

    def __enter__(self) -> SqlRebalanceStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
