"""The replicas' coordination in the store: lease terms, the roster, the leader read and the
fencing of a deposed leader's writes, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest

from broker.store import (
    Coordination,
    Fence,
    FenceLostError,
    LeaderRecord,
    ReplicaRecord,
    SqlStore,
    Transition,
    open_coordination,
    open_rebalance_store,
    open_store,
)
from computenet.types import JobState
from tests.store.factories import START_UNIX_MS, FakeClock, SetClock, new_job

TTL_S = 10.0
TTL_MS = 10_000


@pytest.fixture
def set_clock() -> SetClock:
    """The coordination's clock, moved by hand."""
    return SetClock()


@pytest.fixture
def coordination(store_url: str, set_clock: SetClock) -> Iterator[Coordination]:
    """The replicas' coordination on `store_url`, opened before any store (it migrates)."""
    with open_coordination(store_url, clock=set_clock) as opened:
        yield opened


def _replica(
    broker_id: str, *, role: str = "follower", epoch: int = 0, seen: int = 0
) -> ReplicaRecord:
    return ReplicaRecord(
        broker_id=broker_id,
        address=f"{broker_id}.example:50051",
        agent_address=f"{broker_id}.example:50052",
        role=role,
        epoch=epoch,
        started_unix_ms=START_UNIX_MS,
        last_seen_unix_ms=START_UNIX_MS + seen,
    )


# --- lease terms ------------------------------------------------------------------------


def test_a_new_term_stamps_its_start_and_a_renewal_keeps_it(
    coordination: Coordination, set_clock: SetClock
) -> None:
    lease = coordination.leader_lease
    assert lease.name == "leader" and lease.current() is None
    assert lease.try_acquire("b1", TTL_S) == 1
    first = lease.current()
    assert first is not None and first.acquired_unix_ms == START_UNIX_MS

    set_clock.now_unix_ms += TTL_MS // 2
    assert lease.try_acquire("b1", TTL_S) == 1
    renewed = lease.current()
    assert renewed is not None
    assert renewed.acquired_unix_ms == START_UNIX_MS, "a renewal keeps the term's start"
    assert renewed.expires_unix_ms == set_clock.now_unix_ms + TTL_MS

    set_clock.now_unix_ms += TTL_MS  # b1 stalls past its lease; b2 takes a new term
    assert lease.try_acquire("b2", TTL_S) == 2
    taken = lease.current()
    assert taken is not None
    assert (taken.holder, taken.acquired_unix_ms) == ("b2", set_clock.now_unix_ms)


def test_retaking_after_a_release_or_an_own_expiry_starts_a_new_term(
    coordination: Coordination, set_clock: SetClock
) -> None:
    lease = coordination.leader_lease
    assert lease.try_acquire("b1", TTL_S) == 1
    set_clock.now_unix_ms += 1_000
    assert lease.release("b1", 1)
    assert lease.try_acquire("b1", TTL_S) == 2
    state = lease.current()
    assert state is not None and state.acquired_unix_ms == set_clock.now_unix_ms

    set_clock.now_unix_ms += TTL_MS  # its own lease ran out: coming back is a new term
    assert lease.try_acquire("b1", TTL_S) == 3
    state = lease.current()
    assert state is not None and state.acquired_unix_ms == set_clock.now_unix_ms


def test_a_refused_taker_changes_nothing(coordination: Coordination, set_clock: SetClock) -> None:
    lease = coordination.leader_lease
    assert lease.try_acquire("b1", TTL_S) == 1
    before = lease.current()
    set_clock.now_unix_ms += 1_000
    assert lease.try_acquire("b2", TTL_S) is None
    assert lease.current() == before


# --- the roster -------------------------------------------------------------------------


def test_replicas_are_upserted_and_listed_by_id_when_seen_recently(
    coordination: Coordination,
) -> None:
    roster = coordination.roster
    for record in (_replica("c", seen=30), _replica("a", seen=10), _replica("b", seen=20)):
        roster.record(record)
    assert [r.broker_id for r in roster.replicas(seen_after_unix_ms=0)] == ["a", "b", "c"]
    assert [r.broker_id for r in roster.replicas(START_UNIX_MS + 10)] == ["b", "c"]

    promoted = replace(_replica("a", seen=40), role="leader", epoch=7, address="new:1")
    roster.record(promoted)
    listed = roster.replicas(START_UNIX_MS + 10)
    assert listed == [promoted, _replica("b", seen=20), _replica("c", seen=30)]

    roster.forget("b")
    roster.forget("nobody")
    assert [r.broker_id for r in roster.replicas(0)] == ["a", "c"]


@pytest.mark.parametrize(
    "bad",
    [
        {"broker_id": ""},
        {"broker_id": "x" * 65},
        {"role": "candidate"},
    ],
)
def test_a_malformed_record_is_refused(coordination: Coordination, bad: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        coordination.roster.record(replace(_replica("a"), **bad))
    assert coordination.roster.replicas(0) == []


def test_the_longest_broker_id_fits(coordination: Coordination) -> None:
    record = _replica("x" * 64)
    coordination.roster.record(record)
    assert coordination.roster.replicas(0) == [record]


# --- the leader -------------------------------------------------------------------------


def test_the_leader_is_the_live_lease_holder_with_its_addresses(
    coordination: Coordination, set_clock: SetClock
) -> None:
    roster, lease = coordination.roster, coordination.leader_lease
    assert roster.leader() is None, "never taken"
    roster.record(_replica("b1", role="leader", epoch=1))
    roster.record(_replica("b2"))
    assert lease.try_acquire("b1", TTL_S) == 1
    assert roster.leader() == LeaderRecord(
        "b1", "b1.example:50051", "b1.example:50052", 1, START_UNIX_MS
    )

    set_clock.now_unix_ms += TTL_MS
    assert roster.leader() is None, "expired"
    assert roster.leader(now_unix_ms=set_clock.now_unix_ms - 1) is not None, "an explicit now"
    assert lease.try_acquire("b2", TTL_S) == 2
    assert roster.leader() == LeaderRecord(
        "b2", "b2.example:50051", "b2.example:50052", 2, set_clock.now_unix_ms
    )
    assert lease.release("b2", 2)
    assert roster.leader() is None, "released"


def test_a_leader_without_a_roster_row_has_empty_addresses(coordination: Coordination) -> None:
    assert coordination.leader_lease.try_acquire("b9", TTL_S) == 1
    assert coordination.roster.leader() == LeaderRecord("b9", "", "", 1, START_UNIX_MS)


def test_other_leases_are_not_the_leader(store_url: str, set_clock: SetClock) -> None:
    with (
        open_coordination(store_url, clock=set_clock) as coordination,
        open_rebalance_store(store_url, clock=set_clock) as rebalance,
    ):
        coordination.roster.record(_replica("b1"))
        assert rebalance.lease.try_acquire("b1", TTL_S) == 1
        assert coordination.roster.leader() is None


# --- fencing by the leader's epoch ------------------------------------------------------


def test_a_deposed_leader_writes_nothing(store_url: str) -> None:
    clock = FakeClock()
    with (
        open_coordination(store_url, clock=clock) as coordination,
        open_store(store_url, clock=clock) as store,
    ):
        _assert_fenced_by_epoch(coordination, store, clock)


def _assert_fenced_by_epoch(coordination: Coordination, store: SqlStore, clock: FakeClock) -> None:
    [outcome] = store.submit_jobs([new_job("j1")])
    assert outcome.job is not None
    job_id = outcome.job.job_id
    lease = coordination.leader_lease
    old = lease.try_acquire("b1", TTL_S)
    assert old == 1
    cancel = Transition(job_id, JobState.CANCELLED, "by the old leader")
    clock.now_unix_ms += TTL_MS + 1  # b1 stalls; b2 takes over
    new = lease.try_acquire("b2", TTL_S)
    assert new == 2
    last = store.last_sequence()
    with pytest.raises(FenceLostError):
        store.apply([cancel], fence=Fence("leader", old))
    job = store.get_job(job_id)
    assert job is not None and job.state == JobState.PENDING
    assert store.last_sequence() == last, "no event recorded"
    [event] = store.apply([replace(cancel, cause="by the new leader")], fence=Fence("leader", new))
    assert event is not None and event.state == JobState.CANCELLED


def test_coordination_reports_its_dialect_and_closes_idempotently(store_url: str) -> None:
    coordination = open_coordination(store_url)
    expected = "sqlite" if store_url.startswith("sqlite") else "postgresql"
    assert coordination.dialect == expected
    assert coordination.feed.listening == (expected == "postgresql")
    coordination.close()
    coordination.close()
    assert coordination.feed.wait(0.0) is False
