"""Contract tests of the rebalancing's store (lease, run records, fire claims) on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from broker.store import (
    Fence,
    FenceLostError,
    RebalanceStore,
    SiteRecord,
    SqlRebalanceStore,
    SqlStore,
    Transition,
    open_coordination,
    open_rebalance_store,
    open_store,
)
from computenet.rebalance_types import MoveKind, RebalanceMove, RebalanceRunInfo
from computenet.types import JobState, SiteId, SiteStatus
from tests.store.factories import START_UNIX_MS, FakeClock, SetClock, new_job


@pytest.fixture
def rebalance(store_url: str) -> Iterator[SqlRebalanceStore]:
    """The rebalancing's store on `store_url`, closed after the test."""
    with open_rebalance_store(store_url) as opened:
        yield opened


def _run(
    started_ms: int, *, dry: bool = False, job: str = "j1", applied: bool = True
) -> RebalanceRunInfo:
    move = RebalanceMove(
        job,
        MoveKind.MIGRATE,
        "zhangjiakou",
        "horinger",
        900.0,
        1200.5,
        300.0,
        "cheaper",
        applied=applied,
        error="" if applied else "site refused",
    )
    placed = RebalanceMove(f"{job}-new", MoveKind.PLACE, "", "horinger", 50.0, applied=applied)
    return RebalanceRunInfo(
        run_id=f"{started_ms:013d}-{job}",
        trigger="interval@2026-01-01T00:00:00.000Z",
        dry_run=dry,
        started_unix_ms=started_ms,
        ended_unix_ms=started_ms + 40,
        moves=(move, placed),
        expected_savings_cny=900.0,
        errors=() if applied else ("site refused",),
    )


def test_sql_rebalance_store_satisfies_the_protocol(rebalance: SqlRebalanceStore) -> None:
    checked: RebalanceStore = rebalance
    assert checked.runs.list_runs() == [] and checked.lease.current() is None


# --- run records ------------------------------------------------------------------------


def test_runs_round_trip_and_page_newest_first(rebalance: SqlRebalanceStore) -> None:
    runs = [_run(1_000 + k, job=f"j{k}") for k in range(5)]
    for run in runs:
        rebalance.runs.save_run(run)
    first = rebalance.runs.list_runs(limit=2)
    assert first == [runs[4], runs[3]]
    second = rebalance.runs.list_runs(limit=2, before=first[-1].run_id)
    assert second == [runs[2], runs[1]]
    assert rebalance.runs.list_runs(limit=2, before=second[-1].run_id) == [runs[0]]
    assert rebalance.runs.list_runs(before="no-such-run") == []
    assert rebalance.runs.list_runs(limit=0) == []


def test_runs_starting_at_the_same_moment_page_by_run_id(rebalance: SqlRebalanceStore) -> None:
    runs = [_run(7_000, job=f"j{k}") for k in range(3)]
    for run in runs:
        rebalance.runs.save_run(run)
    assert rebalance.runs.list_runs(limit=1, before=runs[2].run_id) == [runs[1]]


def test_saving_again_replaces_the_run(rebalance: SqlRebalanceStore) -> None:
    run = _run(5_000, applied=False)
    rebalance.runs.save_run(run)
    realised = replace(run, realised_savings_cny=850.0, errors=())
    rebalance.runs.save_run(realised)
    assert rebalance.runs.list_runs() == [realised]


def test_runs_survive_reopening(store_url: str) -> None:
    run = _run(9_000, dry=True)
    with open_rebalance_store(store_url) as first:
        first.runs.save_run(run)
    with open_rebalance_store(store_url) as again:
        assert again.runs.list_runs() == [run]


def test_each_fire_is_claimed_once(store_url: str) -> None:
    with open_rebalance_store(store_url) as a, open_rebalance_store(store_url) as b:
        assert a.runs.claim_fire("interval@2026-01-01T00:00:00.000Z", "a", START_UNIX_MS)
        assert not b.runs.claim_fire("interval@2026-01-01T00:00:00.000Z", "b", START_UNIX_MS)
        assert b.runs.claim_fire("interval@2026-01-01T00:15:00.000Z", "b", START_UNIX_MS)


# --- the lease --------------------------------------------------------------------------


def _race(make: Callable[[], RebalanceStore], replicas: int) -> list[int | None]:
    """Every replica tries to take the lease at once; their results by replica."""
    stores = [make() for _ in range(replicas)]
    barrier = threading.Barrier(replicas)
    results: list[int | None] = [None] * replicas

    def attempt(k: int) -> None:
        barrier.wait()
        results[k] = stores[k].lease.try_acquire(f"replica-{k}", ttl_s=30.0)

    threads = [threading.Thread(target=attempt, args=(k,)) for k in range(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for store in stores:
        store.close()
    return results


@pytest.mark.timeout(180)
def test_racing_replicas_get_one_token_per_term(store_url: str) -> None:
    clock = SetClock()

    def make() -> RebalanceStore:
        return open_rebalance_store(store_url, clock=clock)

    first = _race(make, 6)
    winners = [k for k, token in enumerate(first) if token is not None]
    assert len(winners) == 1 and first[winners[0]] == 1
    with open_rebalance_store(store_url, clock=clock) as holder:
        lease = holder.lease
        assert lease.try_acquire(f"replica-{winners[0]}", ttl_s=30.0) == 1, "renewal keeps it"
        assert lease.check(1)
        clock.now_unix_ms += 31_000  # the holder stalls past its lease
        assert not lease.check(1)
        second = _race(make, 6)
        assert [token for token in second if token is not None] == [2]
        assert not lease.check(1), "the stale token is fenced off"
        assert lease.check(2)
        holder_now = next(k for k, token in enumerate(second) if token is not None)
        other = next(k for k in range(6) if k != holder_now)
        assert lease.try_acquire(f"replica-{other}", ttl_s=30.0) is None, "held for the term"


def test_release_hands_the_lease_over_with_a_new_token(store_url: str) -> None:
    with open_rebalance_store(store_url, clock=SetClock()) as rebalance:
        lease = rebalance.lease
        token = lease.try_acquire("a", ttl_s=60.0)
        assert token == 1
        assert lease.try_acquire("b", ttl_s=60.0) is None
        assert not lease.release("b", token), "only the holder releases"
        assert lease.release("a", token)
        assert lease.try_acquire("b", ttl_s=60.0) == 2
        assert not lease.check(1)
        state = lease.current()
        assert state is not None
        assert (state.name, state.holder, state.fencing_token) == ("rebalance", "b", 2)
        assert state.expires_unix_ms == START_UNIX_MS + 60_000


def test_leases_of_other_names_are_independent(store_url: str) -> None:
    clock = SetClock()
    with (
        open_rebalance_store(store_url, clock=clock) as a,
        open_rebalance_store(store_url, lease_name="other", clock=clock) as b,
    ):
        assert a.lease.try_acquire("a", ttl_s=60.0) == 1
        assert b.lease.try_acquire("b", ttl_s=60.0) == 1
        assert a.lease.name == "rebalance" and b.lease.name == "other"


def test_a_fenced_apply_writes_only_under_the_lease_live_token(
    store: SqlStore, store_url: str, clock: FakeClock
) -> None:
    [outcome] = store.submit_jobs([new_job("f1")])
    assert outcome.job is not None
    job_id = outcome.job.job_id
    cancel = Transition(job_id, JobState.CANCELLED, "fenced")
    with open_rebalance_store(store_url, clock=clock) as rebalance:
        lease = rebalance.lease
        assert lease.try_acquire("a", ttl_s=60.0) == 1
        clock.now_unix_ms += 61_000
        assert lease.try_acquire("b", ttl_s=60.0) == 2
        with pytest.raises(FenceLostError):
            store.apply([cancel], fence=Fence(lease.name, 1))  # the stale token
        job = store.get_job(job_id)
        assert job is not None and job.state == JobState.PENDING, "nothing written"
        with pytest.raises(FenceLostError):
            store.apply([cancel], fence=Fence("other-lease", 2))  # no such lease
        [event] = store.apply([cancel], fence=Fence(lease.name, 2))
        assert event is not None and event.state == JobState.CANCELLED
        clock.now_unix_ms += 61_000  # expired: even the last token writes nothing
        with pytest.raises(FenceLostError):
            store.apply([Transition(job_id, JobState.PENDING, "x")], fence=Fence(lease.name, 2))


def test_a_seized_lease_fences_off_its_live_holder(store_url: str) -> None:
    with open_rebalance_store(store_url, clock=SetClock()) as rebalance:
        lease = rebalance.lease
        assert lease.seize("leader-1", ttl_s=60.0) == 1, "the first seizure creates the row"
        held = lease.try_acquire("old", ttl_s=60.0)
        assert held is None
        assert lease.seize("leader-2", ttl_s=60.0) == 2
        assert not lease.check(1), "the previous holder's token no longer writes"
        assert lease.check(2)
        assert lease.try_acquire("leader-2", ttl_s=60.0) == 2, "the new holder renews"
        state = lease.current()
        assert state is not None and state.holder == "leader-2"


def test_a_site_record_fenced_by_a_stale_epoch_is_not_saved(store_url: str) -> None:
    with open_store(store_url) as store, open_coordination(store_url) as coordination:
        old = coordination.leader_lease.seize("a", ttl_s=60.0)
        coordination.leader_lease.seize("b", ttl_s=60.0)  # a newer leader
        record = SiteRecord(SiteId("zhongwei"), SiteStatus.ACTIVE, drained=True)
        with pytest.raises(FenceLostError):
            store.save_site(record, fence=Fence("leader", old))
        assert store.sites() == []
        store.save_site(record, fence=Fence("leader", old + 1))
        assert [s.drained for s in store.sites()] == [True]
