"""The jobs API end to end: validation, watch resumption, cancel, and a site lost mid-run."""

from __future__ import annotations

import re
import time
import urllib.request
from pathlib import Path

import grpc
import pytest

from computenet.errors import (
    InvalidArgumentError,
    JobAlreadyExistsError,
    JobNotFoundError,
    SpecError,
)
from computenet.spec import parse_spec
from computenet.status import error_from_rpc_error
from computenet.types import JobState, SiteStatus
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import types_pb2
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import wait_for_line
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for

BATCH = {
    "name": "b",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.01,
    "command": ["true"],
}


def _raw_spec(**overrides: object) -> job_pb.SubmitJobRequest:
    """A wire request built without the SDK's local validation, so the broker's is tested."""
    spec = types_pb2.JobSpec(
        name="b",
        kind=types_pb2.JOB_KIND_BATCH,
        resources=types_pb2.Resources(accelerator="a800", count=1),
        duration_hours=0.01,
        command=["true"],
    )
    for name, value in overrides.items():
        if name == "resources":
            spec.resources.CopyFrom(value)  # type: ignore[arg-type]
        elif name == "inference":
            spec.inference.CopyFrom(value)  # type: ignore[arg-type]
        elif name == "dataset":
            spec.dataset.CopyFrom(value)  # type: ignore[arg-type]
        elif name == "command":
            del spec.command[:]
        else:
            setattr(spec, name, value)
    return job_pb.SubmitJobRequest(spec=spec, request_id="bad")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"resources": types_pb2.Resources(accelerator="z9000", count=1)},
            "spec.resources.accelerator",
        ),
        (
            {"resources": types_pb2.Resources(accelerator="a800", count=100_000)},
            "spec.resources.count",
        ),
        ({"command": []}, "spec.command"),
        ({"duration_hours": -3.0}, "spec.duration_hours"),
        ({"kind": types_pb2.JOB_KIND_UNSPECIFIED}, "spec.kind"),
        (
            {
                "kind": types_pb2.JOB_KIND_INFERENCE,
                "inference": types_pb2.InferenceSpec(
                    user_regions=[types_pb2.RegionDemand(region="atlantis", weight=1)],
                    latency_slo_ms=10,
                ),
            },
            "spec.inference.user_regions[0].region",
        ),
        ({"dataset": types_pb2.Dataset(origin="nowhere", size_gb=1)}, "spec.dataset.origin"),
        ({"name": "x" * 5_000_000}, None),
    ],
)
def test_malformed_specs_are_rejected_field_by_field_and_store_nothing(
    broker_factory: BrokerFactory, overrides: dict[str, object], field: str | None
) -> None:
    broker = broker_factory()
    with broker.channel() as channel:
        stub = job_grpc.JobServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.SubmitJob(_raw_spec(**overrides), timeout=10, metadata=broker.metadata())
    error = error_from_rpc_error(info.value)
    if field is None:  # an oversized message is refused by the transport limit
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    else:
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert isinstance(error, InvalidArgumentError)
        assert field in {v.field for v in error.violations}, error.violations
    with broker.client() as client:
        assert list(client.list()) == []


def test_negative_counts_are_refused_before_leaving_the_client() -> None:
    with pytest.raises(SpecError) as info:
        parse_spec({**BATCH, "resources": {"accelerator": "a800", "count": -1}})
    assert "spec.resources.count" in {v.field for v in info.value.violations}


def test_watch_resumed_from_last_sequence_yields_every_event_once(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    with broker.client() as client:
        job = client.submit(BATCH, request_id="w1").job
        first = next(iter(client.watch(job.job_id)))
        assert first.state == JobState.PENDING
        client.cancel(job.job_id, reason="test")
        rest = list(client.watch(job.job_id, after_sequence=first.sequence))
        everything = list(client.watch(job.job_id))
    assert [e.sequence for e in everything] == [first.sequence] + [e.sequence for e in rest]
    assert len({e.sequence for e in everything}) == len(everything)
    assert everything[-1].state == JobState.CANCELLED


def test_unknown_job_is_not_found(broker_factory: BrokerFactory) -> None:
    broker = broker_factory()
    with broker.client() as client, pytest.raises(JobNotFoundError):
        client.get("job-does-not-exist")


def test_silent_site_goes_suspect_then_lost_and_its_job_is_requeued(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory(
        "--suspect-after", "1", "--lost-after", "2.5", "--lease", "2", "--clock-skew-margin", "0.5"
    )
    assert broker.pki is not None
    agent = ScriptedAgent(
        broker.agent_address, "horinger", credentials=broker.pki.site_credentials("horinger")
    )
    agent.next("welcome")
    agent.report_capacity("910b", 8)
    with broker.client() as client:
        # heartbeats while the job is placed, however slow the machine: silence comes later
        with agent.reporting("910b", 8):
            job = client.submit(
                {**BATCH, "resources": {"accelerator": "910b", "count": 2}}, request_id="l1"
            ).job
            dispatch = agent.next("dispatch").dispatch
            assert dispatch.job_id == job.job_id and dispatch.attempt == 1
            agent.ack(dispatch.delivery_id)
            agent.job_event(job.job_id, 1, types_pb2.JOB_STATE_RUNNING)
            wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running")
            assert client.site("horinger").status == SiteStatus.ACTIVE
        before = client.site("horinger").last_report_unix_ms
        agent.report_capacity("910b", 8)  # a last heartbeat, then silence
        last_ms = wait_for(
            lambda: (ms := client.site("horinger").last_report_unix_ms) > before and ms,
            what="the last report",
        )
        agent.close()
        wait_for(lambda: client.site("horinger").status == SiteStatus.SUSPECT, what="suspect")
        suspect_s = time.time() - last_ms / 1000
        wait_for(lambda: client.site("horinger").status == SiteStatus.LOST, what="lost")
        requeued = wait_for(
            lambda: (j := client.get(job.job_id)).state == JobState.PENDING and j,
            what="requeue",
        )
        requeue = next(e for e in client.watch(job.job_id) if e.cause == "site_lost")
    # Judged only once silent for the configured timeouts (1 s, 2.5 s) since the last report;
    # the requeue is timed by the broker's own record of it.
    assert suspect_s >= 1.0
    assert requeue.time_unix_ms - last_ms >= 2500
    assert requeued.site is None and requeued.attempt == 1


def test_same_request_id_with_another_spec_is_already_exists(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    with broker.client() as client:
        first = client.submit(BATCH, request_id="same")
        again = client.submit(BATCH, request_id="same")
        assert again.duplicate and again.job.job_id == first.job.job_id
        with pytest.raises(JobAlreadyExistsError):
            client.submit({**BATCH, "duration_hours": 2.0}, request_id="same")
        assert [j.job_id for j in client.list()] == [first.job.job_id]


def test_prometheus_endpoint_reports_jobs_sites_and_rpcs(
    broker_factory: BrokerFactory, tmp_path: Path
) -> None:
    broker = broker_factory("--metrics-listen", "127.0.0.1:0")
    metrics_address = wait_for_line(broker.proc, re.compile(r"metrics on (\S+)")).group(1)
    with broker.client() as client:
        client.submit(BATCH, request_id="m1")
        with pytest.raises(JobNotFoundError):
            client.get("job-missing")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as reply:
            return reply.read().decode()

    text = wait_for(
        lambda: (t := scrape()) and 'computenet_jobs{state="pending"} 1.0' in t and t,
        timeout_s=15,
        what="jobs gauge",
    )
    assert 'computenet_sites{status="offline"} 10.0' in text
    assert 'method="/computenet.v1.JobService/SubmitJob"' in text
    assert 'code="NOT_FOUND"' in text
    assert "computenet_placement_decision_seconds_bucket" in text


def test_cancel_of_a_running_job_completes_when_its_site_confirms(
    broker_factory: BrokerFactory,
) -> None:
    broker = broker_factory()
    assert broker.pki is not None
    agent = ScriptedAgent(
        broker.agent_address, "guian", credentials=broker.pki.site_credentials("guian")
    )
    agent.next("welcome")
    agent.report_capacity("910b", 8)
    with broker.client() as client:
        job = client.submit(
            {**BATCH, "resources": {"accelerator": "910b", "count": 1}}, request_id="c1"
        ).job
        dispatch = agent.next("dispatch").dispatch
        agent.ack(dispatch.delivery_id)
        agent.job_event(job.job_id, dispatch.attempt, types_pb2.JOB_STATE_RUNNING)
        wait_for(lambda: client.get(job.job_id).state == JobState.RUNNING, what="running")
        asked = client.cancel(job.job_id, reason="no longer needed")
        assert asked.state == JobState.RUNNING and asked.cancel_requested
        cancel = agent.next("cancel").cancel
        assert (cancel.job_id, cancel.attempt) == (job.job_id, dispatch.attempt)
        agent.ack(cancel.delivery_id)
        agent.job_event(job.job_id, dispatch.attempt, types_pb2.JOB_STATE_CANCELLED)
        done = wait_for(
            lambda: (j := client.get(job.job_id)).state.is_final and j, what="cancelled"
        )
    assert done.state == JobState.CANCELLED
    agent.close()
