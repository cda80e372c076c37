"""Every filter that ListJobs, WatchJob and WatchJobs declare, honoured by a real broker."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import grpc
import pytest

from computenet import Client
from computenet.errors import InvalidArgumentError
from computenet.status import error_from_rpc_error
from computenet.types import JobEvent, JobState
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import types_pb2
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import BrokerProcess, wait_for_line
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for

BATCH = {
    "name": "b",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.01,
    "command": ["true"],
}
TRAINING = {**BATCH, "name": "t", "kind": "training"}
STREAM_TIMEOUT_S = 30.0
CLI = "from computenet.cli.main import main; main()"


def _read_until(
    client: Client, stream: Iterable[JobEvent], last: Callable[[JobEvent], bool]
) -> list[JobEvent]:
    """Events of an endless stream up to and including the first for which `last` holds.

    Sequence numbers are ordered, so every event the filters let through before that one is
    in the list. Closing the client after a deadline ends a stream that never delivers it.
    """
    deadline = threading.Timer(STREAM_TIMEOUT_S, client.close)
    deadline.start()
    events: list[JobEvent] = []
    try:
        for event in stream:
            events.append(event)
            if last(event):
                return events
    finally:
        deadline.cancel()
    raise AssertionError(f"stream ended before the expected event; got {events}")


def _submitted(job_id: str) -> Callable[[JobEvent], bool]:
    return lambda e: e.job_id == job_id and e.cause == "submitted"


def _ids(events: Iterable[JobEvent]) -> list[str]:
    return [e.job_id for e in events]


def test_watch_jobs_kind_filter_keeps_its_kind_and_drops_the_rest(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    with broker.client() as client:
        t1 = client.submit(TRAINING, request_id="t1").job.job_id
        b1 = client.submit(BATCH, request_id="b1").job.job_id
        t2 = client.submit(TRAINING, request_id="t2").job.job_id
        client.cancel(t1, reason="test")
        b2 = client.submit(BATCH, request_id="b2").job.job_id
        t3 = client.submit(TRAINING, request_id="t3").job.job_id
        everything = _read_until(client, client.watch_all(), _submitted(t3))
    with broker.client() as client:
        batch = _read_until(client, client.watch_all(kind="batch"), _submitted(b2))
    with broker.client() as client:
        training = _read_until(client, client.watch_all(kind="training"), _submitted(t3))
    with broker.client() as client:
        one_job = list(client.watch(t1))
    assert batch == [e for e in everything if e.job_id in (b1, b2)]
    assert training == [e for e in everything if e.job_id in (t1, t2, t3)]
    assert set(_ids(training)) == {t1, t2, t3} and set(_ids(batch)) == {b1, b2}
    assert one_job == [e for e in everything if e.job_id == t1]
    assert one_job[-1].state == JobState.CANCELLED


def test_watch_jobs_from_a_sequence_with_a_filter_skips_earlier_matches(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    with broker.client() as client:
        first = client.submit(BATCH, request_id="b1").job
        client.submit(TRAINING, request_id="t1")
        second = client.submit(BATCH, request_id="b2").job.job_id
        start = first.last_sequence
        later = _read_until(
            client, client.watch_all(after_sequence=start, kind="batch"), _submitted(second)
        )
    assert _ids(later) == [second] and later[0].sequence > start


def test_watch_jobs_tenant_filter_keeps_its_tenant_and_drops_the_rest(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    with broker.client("alice") as alice, broker.client("bob") as bob:
        a1 = alice.submit(BATCH, request_id="a1").job.job_id
        b1 = bob.submit(BATCH, request_id="b1").job.job_id
        a2 = alice.submit(TRAINING, request_id="a2").job.job_id
        b2 = bob.submit(TRAINING, request_id="b2").job.job_id
        a3 = alice.submit(BATCH, request_id="a3").job.job_id
        own = _read_until(alice, alice.watch_all(), _submitted(a3))
    with broker.client("bob") as bob:
        # A user asking for another tenant's events gets none, not an error.
        assert list(bob.watch_all(tenant="tenant-a")) == []
        bobs = _read_until(bob, bob.watch_all(tenant="tenant-b"), _submitted(b2))
    with broker.client() as operator:
        tenant_a = _read_until(operator, operator.watch_all(tenant="tenant-a"), _submitted(a3))
    with broker.client() as operator:
        stream = operator.watch_all(tenant="tenant-a", kind="batch")
        a_batch = _read_until(operator, stream, _submitted(a3))
    assert _ids(own) == _ids(tenant_a) == [a1, a2, a3]
    assert _ids(bobs) == [b1, b2]
    assert _ids(a_batch) == [a1, a3]


def test_list_jobs_honours_state_kind_site_tenant_and_paging(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    assert broker.pki is not None
    agent = ScriptedAgent(
        broker.agent_address, "guian", credentials=broker.pki.site_credentials("guian")
    )
    agent.next("welcome")
    agent.report_capacity("910b", 8)
    with broker.client("alice") as alice, broker.client("bob") as bob:
        placed = alice.submit(
            {**BATCH, "resources": {"accelerator": "910b", "count": 1}}, request_id="p"
        ).job.job_id
        dispatch = agent.next("dispatch").dispatch
        assert dispatch.job_id == placed
        waiting = alice.submit(TRAINING, request_id="w").job.job_id
        bobs = bob.submit(BATCH, request_id="b").job.job_id
    with broker.client() as operator:
        wait_for(lambda: operator.get(placed).site == "guian", what="placement at guian")
        assert _ids(operator.list(site="guian")) == [placed]
        assert _ids(operator.list(state="pending")) == [waiting, bobs]
        assert _ids(operator.list(kind="training")) == [waiting]
        assert _ids(operator.list(tenant="tenant-b")) == [bobs]
        assert _ids(operator.list(tenant="tenant-a", kind="batch")) == [placed]
        first = operator.list_page(page_size=2)
        rest = operator.list_page(page_size=2, page_token=first.next_page_token)
        assert _ids(first.jobs) == [placed, waiting] and first.next_page_token
        assert _ids(rest.jobs) == [bobs] and rest.next_page_token == ""
    agent.close()


@pytest.mark.parametrize("call", ["ListJobs", "WatchJobs"])
def test_an_unknown_kind_is_refused_rather_than_read_as_any(
    broker_factory: BrokerFactory, call: str
) -> None:
    broker = broker_factory()
    with broker.client() as client:
        client.submit(BATCH, request_id="b1")
    with broker.channel() as channel:
        stub = job_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            if call == "ListJobs":
                request = job_pb.ListJobsRequest(kind=types_pb2.JobKind.ValueType(99))
                stub.ListJobs(request, timeout=10, metadata=broker.metadata())
            else:
                request_all = job_pb.WatchJobsRequest(kind=types_pb2.JobKind.ValueType(99))
                list(stub.WatchJobs(request_all, timeout=10, metadata=broker.metadata()))
    error = error_from_rpc_error(info.value)
    assert isinstance(error, InvalidArgumentError)
    assert [v.field for v in error.violations] == ["kind"]


def _cli_watch(broker: BrokerProcess, tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    assert broker.pki is not None
    env = {
        **os.environ,
        "COMPUTENET_CA": str(broker.pki.ca),
        "COMPUTENET_TOKEN": broker.pki.tokens["operator"],
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-c", CLI, "jobs", "watch", "--broker", broker.address, *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path)


def test_cli_jobs_watch_kind_and_tenant_reach_the_broker(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = broker_factory()
    with broker.client("alice") as alice, broker.client("bob") as bob:
        a1 = alice.submit(TRAINING, request_id="a1").job.job_id
        bob.submit(TRAINING, request_id="b1")
        alice.submit(BATCH, request_id="a2")
        a3 = alice.submit(TRAINING, request_id="a3").job.job_id
    proc = _cli_watch(broker, tmp_path, "--kind", "training", "--tenant", "tenant-a")
    event_line = re.compile(r"^#\d+\s+(\S+)\s+\S+\s+(\S+)")
    try:
        lines = [wait_for_line(proc, event_line).groups() for _ in range(2)]
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert lines == [(a1, "pending"), (a3, "pending")]
