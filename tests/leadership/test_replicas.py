"""Two broker replicas on one PostgreSQL database, in this process on 127.0.0.1:0: one leads,
the other serves jobs from the database and refers the rest to the leader."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import grpc
import pytest

from broker.app import Broker, BrokerSettings
from broker.leadership.settings import ClusterSettings
from computenet import Client, JobState, NotLeaderError
from computenet.address import Address
from computenet.status import error_from_rpc_error
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

T = TypeVar("T")
SITE = "horinger"
SPEC: dict[str, Any] = {
    "name": "replicated",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 2, "cpu": 1, "memory_gb": 1},
    "duration_hours": 1.0,
    "command": ["true"],
}


class Replica:
    """One broker on an event loop of its own thread, as it would be in its own process."""

    def __init__(self, settings: BrokerSettings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.broker: Broker = self.run(lambda: _build(settings))
        self.address = str(self.run(self.broker.start))

    def run(self, make: Callable[[], Awaitable[T]]) -> T:
        async def call() -> T:
            return await make()

        return asyncio.run_coroutine_threadsafe(call(), self.loop).result(timeout=60)

    def stop(self) -> None:
        try:
            self.run(self.broker.stop)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=30)
            self.loop.close()


async def _build(settings: BrokerSettings) -> Broker:
    return Broker(settings)


class Replicas:
    """Broker replicas on one database, stopped at the end."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.running: list[Replica] = []

    def start(self, replica_id: str) -> tuple[Broker, str]:
        settings = BrokerSettings(
            listen=Address("127.0.0.1", 0),
            db_url=self.url,
            cluster=ClusterSettings(replica_id=replica_id),
        )
        replica = Replica(settings)
        self.running.append(replica)
        return replica.broker, replica.address

    def stop_one(self, broker: Broker) -> None:
        replica = next(r for r in self.running if r.broker is broker)
        self.running.remove(replica)
        replica.stop()

    def stop(self) -> None:
        for replica in reversed(self.running):
            replica.stop()


@pytest.fixture
def replicas(postgres_db_url: str) -> Iterator[Replicas]:
    started = Replicas(postgres_db_url)
    try:
        yield started
    finally:
        started.stop()


def test_a_follower_takes_jobs_the_leader_places_and_refers_the_rest(replicas: Replicas) -> None:
    leader, leader_address = replicas.start("a")
    follower, follower_address = replicas.start("b")
    assert leader.elector.leading() and not follower.elector.leading()

    with Client(address=follower_address) as via_follower:
        status = via_follower.cluster_status()
        assert status.leader is not None
        assert (status.leader.broker_id, status.leader.address, status.leader.epoch) == (
            "a",
            leader_address,
            1,
        )
        assert {(r.broker_id, r.role) for r in status.replicas} == {
            ("a", "leader"),
            ("b", "follower"),
        }

    # an agent at the follower is told where the leader is
    refused = ScriptedAgent(follower_address, SITE)
    with pytest.raises(grpc.RpcError) as caught:
        refused.next("welcome")
    error = error_from_rpc_error(caught.value)
    assert isinstance(error, NotLeaderError)
    assert error.leader_agent_address == leader_address
    refused.close()

    agent = ScriptedAgent(leader_address, SITE)
    try:
        assert agent.next("welcome").welcome.leader_epoch == 1
        agent.heartbeat(1, "a800", 8)
        with Client(address=follower_address) as client:
            # the follower makes the job durable; the leader learns of it from the database
            job = client.submit(SPEC, request_id="via-follower").job
            dispatch = agent.next("dispatch", timeout_s=30).dispatch
            assert (dispatch.job_id, dispatch.attempt) == (job.job_id, 1)
            agent.ack(dispatch.delivery_id)
            wait_for(lambda: client.get(job.job_id).state == JobState.DISPATCHED, what="acked")

            # a watch on the follower sees the leader's events, each once, in order
            events = []
            for event in client.watch(job.job_id):
                events.append(event)
                if event.state == JobState.DISPATCHED:
                    break
            assert [e.state for e in events] == [
                JobState.PENDING,
                JobState.PLACED,
                JobState.DISPATCHED,
            ]
            assert len({e.sequence for e in events}) == 3

            # leader-only calls at the follower: NOT_LEADER naming the leader on the wire...
            with grpc.insecure_channel(follower_address) as channel:
                stub = job_grpc.JobServiceStub(channel)
                with pytest.raises(grpc.RpcError) as caught:
                    stub.CancelJob(job_pb.CancelJobRequest(job_id=job.job_id))
            error = error_from_rpc_error(caught.value)
            assert isinstance(error, NotLeaderError)
            assert error.leader_address == leader_address
            # ...which the SDK follows by itself
            cancelled = client.cancel(job.job_id, "done with it")
            assert cancelled.cancel_requested
            stop = agent.next("cancel", timeout_s=30).cancel
            assert (stop.job_id, stop.attempt) == (job.job_id, 1)
    finally:
        agent.close()


def test_a_follower_takes_over_when_the_leader_resigns(replicas: Replicas) -> None:
    leader, _ = replicas.start("a")
    follower, follower_address = replicas.start("b")
    assert leader.elector.leading()
    replicas.stop_one(leader)
    wait_for(follower.elector.leading, timeout_s=30, what="the follower leads")
    with Client(address=follower_address) as client:
        status = client.cluster_status()
        assert status.leader is not None
        assert (status.leader.broker_id, status.leader.epoch) == ("b", 2)
        assert [r.broker_id for r in status.replicas] == ["b"], "a resigned replica is forgotten"
