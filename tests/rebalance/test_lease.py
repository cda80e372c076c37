"""The rebalance lease: one winner per term among racing replicas, and stale tokens fenced off."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from broker.rebalance.lease import DatabaseLease


class FakeClock:
    """A settable clock shared by the replicas of a test."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _race(make_lease: Callable[[], DatabaseLease], replicas: int) -> list[int | None]:
    """Every replica tries to take the lease at once; their results by replica."""
    leases = [make_lease() for _ in range(replicas)]
    barrier = threading.Barrier(replicas)
    results: list[int | None] = [None] * replicas

    def attempt(k: int) -> None:
        barrier.wait()
        results[k] = leases[k].try_acquire(f"replica-{k}", ttl_s=30.0)

    threads = [threading.Thread(target=attempt, args=(k,)) for k in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


def _contract(make_engine: Callable[[], sa.Engine]) -> None:
    clock = FakeClock()

    def make_lease() -> DatabaseLease:
        return DatabaseLease(make_engine(), clock=clock)

    first = _race(make_lease, 6)
    winners = [k for k, token in enumerate(first) if token is not None]
    assert len(winners) == 1 and first[winners[0]] == 1

    holder = make_lease()
    assert holder.try_acquire(f"replica-{winners[0]}", ttl_s=30.0) == 1  # renewal keeps the token
    assert holder.check(1)

    clock.now += 31.0  # the holder stalls past its lease
    assert not holder.check(1)
    second = _race(make_lease, 6)
    takers = [token for token in second if token is not None]
    assert takers == [2]
    assert not holder.check(1)  # the stale token is fenced off
    assert holder.check(2)
    assert holder.try_acquire(f"replica-{winners[0]}", ttl_s=30.0) in (None, 2)


def test_sqlite_replicas_race_for_the_lease(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    _contract(lambda: sa.create_engine(url, connect_args={"timeout": 30}))


@pytest.mark.postgres
def test_postgres_replicas_race_for_the_lease(postgres_db_url: str) -> None:
    _contract(lambda: sa.create_engine(postgres_db_url, pool_size=2))


def test_release_hands_the_lease_over_with_a_new_token(tmp_path: Path) -> None:
    lease = DatabaseLease(sa.create_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    token = lease.try_acquire("a", ttl_s=60.0)
    assert token == 1
    assert lease.try_acquire("b", ttl_s=60.0) is None
    assert lease.release("a", token)
    assert lease.try_acquire("b", ttl_s=60.0) == 2
    assert not lease.check(1)
    state = lease.current()
    assert state is not None and (state.holder, state.fencing_token) == ("b", 2)


def test_check_inside_the_writers_transaction(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'l.db'}")
    lease = DatabaseLease(engine)
    token = lease.try_acquire("a", ttl_s=60.0)
    assert token is not None
    with engine.begin() as conn:
        assert lease.check(token, conn=conn)
        assert not lease.check(token + 1, conn=conn)
