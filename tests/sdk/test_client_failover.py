"""Clients with several broker addresses against real gRPC replicas on 127.0.0.1:0: they move
past dead, refusing and frozen replicas, prefer the leader a follower names, keep a submission's
request id, and resume a broken watch on another replica with every event exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest

from computenet import AsyncClient, Client, JobState
from computenet.client import RetryPolicy
from computenet.errors import (
    DeadlineExceededError,
    NotLeaderError,
    UnavailableError,
)
from computenet.types import ClusterLeader, ClusterReplica, ClusterStatus
from tests.sdk.conftest import FAST_RETRY
from tests.sdk.replicas import (
    Refusing,
    Replaying,
    Replica,
    Serving,
    start_replica,
    stop_replica,
)
from tests.sdk.test_client import SPEC

Start = Callable[[Any], Replica]


@pytest.fixture
def start() -> Iterator[Start]:
    started: list[Replica] = []

    def _start(servicer: Any) -> Replica:
        started.append(start_replica(servicer))
        return started[-1]

    yield _start
    for replica in started:
        stop_replica(replica)


def _client(*addresses: str, timeout_s: float = 5, **kwargs: Any) -> Client:
    return Client(address=list(addresses), timeout_s=timeout_s, retry=FAST_RETRY, **kwargs)


def _follower_of(leader: Replica) -> Refusing:
    return Refusing(NotLeaderError("not the leader", leader_address=leader.address))


def test_a_call_moves_past_a_dead_and_a_refusing_replica_and_then_sticks(
    start: Start, dead_address: str
) -> None:
    refusing = start(Refusing(grpc.StatusCode.UNAVAILABLE))
    serving = start(Serving())
    with _client(dead_address, refusing.address, serving.address) as client:
        job = client.submit(SPEC).job
        assert client.get(job.job_id) == job
        assert client.sites()
    assert refusing.methods == ["SubmitJob"], "later calls start at the replica that worked"
    assert serving.methods == ["SubmitJob", "GetJob", "ListSites"]


def test_a_follower_sends_the_call_to_the_leader_it_names_first(start: Start) -> None:
    leader = start(Serving())
    other = start(Serving())
    follower = start(_follower_of(leader))
    with _client(follower.address, other.address, leader.address) as client:
        assert client.plan(SPEC).chosen == "gansu-qingyang"
    assert (follower.methods, other.methods, leader.methods) == (["PlanJob"], [], ["PlanJob"])


def test_a_leader_not_among_the_addresses_is_tried_too(start: Start) -> None:
    leader = start(Serving())
    follower = start(_follower_of(leader))
    with _client(follower.address) as client:
        client.drain("gansu-qingyang")
        client.drain("gansu-qingyang", drain=False)
        assert client.addresses == (follower.address,)
    assert follower.methods == ["DrainSite"]
    assert leader.methods == ["DrainSite", "DrainSite"]


def test_submit_after_unavailable_reaches_the_next_replica_with_the_same_request_id(
    start: Start,
) -> None:
    refusing = start(Refusing(UnavailableError("database unreachable")))
    serving = start(Serving())
    with _client(refusing.address, serving.address) as client:
        result = client.submit(SPEC)
    [(_, sent)] = refusing.servicer.requests
    assert sent.request_id and serving.servicer.script.submit_request_ids == [sent.request_id]
    assert result.job.request_id == sent.request_id and not result.duplicate


def test_submit_after_a_deadline_reaches_the_next_replica_with_the_same_request_id(
    start: Start,
) -> None:
    frozen = start(Refusing(grpc.StatusCode.UNAVAILABLE, hang=True))
    serving = start(Serving())
    with _client(frozen.address, serving.address, timeout_s=0.5) as client:
        result = client.submit(SPEC, request_id="r-frozen")
    assert [r.request_id for _, r in frozen.servicer.requests] == ["r-frozen"]
    assert serving.servicer.script.submit_request_ids == ["r-frozen"]
    assert result.job.request_id == "r-frozen"


def test_a_submit_whose_first_reply_was_lost_is_a_duplicate_not_a_second_job(
    start: Start,
) -> None:
    # The first replica stored the job and froze before answering: the retry elsewhere is
    # answered from the shared store with the job the first one made.
    first = Serving()
    frozen = start(Refusing(grpc.StatusCode.UNAVAILABLE, hang=True))
    serving = Serving()
    serving.share_state_with(first)
    with _client(start(first).address, timeout_s=5) as client:
        made = client.submit(SPEC, request_id="r-once").job
    with _client(frozen.address, start(serving).address, timeout_s=0.5) as client:
        again = client.submit(SPEC, request_id="r-once")
    assert again.duplicate and again.job.job_id == made.job_id
    assert len(serving.jobs) == 1


def test_a_replica_that_lets_the_deadline_pass_is_not_tried_again(start: Start) -> None:
    frozen = start(Refusing(grpc.StatusCode.UNAVAILABLE, hang=True))
    with _client(frozen.address, timeout_s=0.3) as client, pytest.raises(DeadlineExceededError):
        client.get("j-1")
    assert frozen.methods == ["GetJob"]


def test_apply_is_repeated_only_where_nothing_was_done(start: Start, dead_address: str) -> None:
    leader = start(Serving())
    follower = start(_follower_of(leader))
    with _client(dead_address, follower.address) as client:
        assert client.apply_rebalance().run_id == "run-1"
    assert leader.servicer.applied == 1
    broken = start(Refusing(UnavailableError("stream reset")))
    with _client(broken.address, leader.address) as client, pytest.raises(UnavailableError):
        client.apply_rebalance()
    assert leader.servicer.applied == 1, "an apply that may have happened is not repeated"


def test_when_no_replica_serves_the_error_names_each_and_what_it_did(
    start: Start, dead_address: str
) -> None:
    follower = start(Refusing(NotLeaderError("not the leader")))
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.01)
    client = Client(address=f"{follower.address},{dead_address}", timeout_s=2, retry=policy)
    with client, pytest.raises(UnavailableError) as err:
        client.plan(SPEC)
    assert str(err.value) == (
        "no broker replica served the call (UNAVAILABLE): "
        f"{follower.address}: not the leader (none known); {dead_address}: unreachable"
    )
    assert follower.methods == ["PlanJob", "PlanJob"], "two rounds, as the policy allows"


def test_a_broken_watch_resumes_on_the_next_replica_after_the_last_event(start: Start) -> None:
    first, second = Serving(), Serving()
    second.share_state_with(first)
    a, b = start(first), start(second)
    with _client(a.address, b.address) as client:
        job_id = client.submit(SPEC).job.job_id
        for state in (JobState.PLACED, JobState.RUNNING):
            first.add_event(job_id, state, "test")
        first.add_event(job_id, JobState.SUCCEEDED, "site_report", exit_code=0)
        first.script.break_watch_after = 2
        events = list(client.watch(job_id))
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert first.script.watch_after_sequences == [0]
    assert second.script.watch_after_sequences == [2]


def test_a_replica_resending_old_events_delivers_none_twice(start: Start) -> None:
    first, replaying = Serving(), Replaying()
    replaying.share_state_with(first)
    a, b = start(first), start(replaying)
    with _client(a.address, b.address) as client:
        job_id = client.submit(SPEC).job.job_id
        for state in (JobState.RUNNING, JobState.FAILED):
            first.add_event(job_id, state, "test")
        first.script.break_watch_after = 1
        events = list(client.watch(job_id))
    assert [e.sequence for e in events] == [1, 2, 3]
    assert replaying.asked_after == [1]


def test_cluster_status_comes_from_any_replica(start: Start, dead_address: str) -> None:
    status = ClusterStatus(
        leader=ClusterLeader("b-1", "10.0.0.1:50051", "10.0.0.1:50052", 7, 1_700_000_000_000),
        replicas=(
            ClusterReplica("b-1", "10.0.0.1:50051", "leader", 1_700_000_100_000),
            ClusterReplica("b-2", "10.0.0.2:50051", "follower", 1_700_000_099_000, "x:1"),
        ),
    )
    serving = start(Serving(status))
    with _client(dead_address, serving.address) as client:
        assert client.cluster_status() == status
    with _client(serving.address) as client:
        serving.servicer.cluster = ClusterStatus(leader=None)
        assert client.cluster_status() == ClusterStatus(leader=None)


def test_async_client_fails_over_and_resumes_like_the_blocking_one(
    start: Start, dead_address: str
) -> None:
    first, second = Serving(ClusterStatus(leader=None)), Serving()
    second.share_state_with(first)
    a, b = start(first), start(second)
    follower = start(_follower_of(b))
    refusing = start(Refusing(grpc.StatusCode.UNAVAILABLE))

    async def scenario() -> None:
        addresses = [dead_address, refusing.address, a.address, b.address]
        async with AsyncClient(address=addresses, timeout_s=5, retry=FAST_RETRY) as client:
            job = (await client.submit(SPEC, request_id="r-async")).job
            first.add_event(job.job_id, JobState.RUNNING, "test")
            first.add_event(job.job_id, JobState.SUCCEEDED, "site_report", exit_code=0)
            first.script.break_watch_after = 1
            events = [e async for e in client.watch(job.job_id)]
            assert [e.sequence for e in events] == [1, 2, 3]
            assert (await client.cluster_status()).leader is None
        async with AsyncClient(address=[follower.address], timeout_s=5) as client:
            assert (await client.plan(SPEC)).chosen == "gansu-qingyang"

    asyncio.run(scenario())
    assert [r.request_id for _, r in refusing.servicer.requests] == ["r-async"]
    assert first.script.submit_request_ids == ["r-async"]
    assert (first.script.watch_after_sequences, second.script.watch_after_sequences) == ([0], [1])
    assert b.methods == ["WatchJob", "GetClusterStatus", "PlanJob"]
