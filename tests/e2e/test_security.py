"""Security against the real broker: tenants isolated, roles enforced, sites pinned, floods."""

from __future__ import annotations

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from computenet import RetryPolicy
from computenet.errors import (
    JobNotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from computenet.status import error_from_rpc_error
from computenet.types import SiteStatus
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2 as reb_pb
from computenet.v1 import rebalance_service_pb2_grpc as reb_grpc
from tests.e2e.conftest import BrokerFactory
from tests.support.processes import BrokerProcess
from tests.support.scripted_agent import ScriptedAgent
from tests.support.waiting import wait_for

BATCH = {
    "name": "s",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.1,
    "command": ["true"],
}


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> BrokerProcess:
    return broker_factory("--submit-rate", "5")


def test_a_tenant_cannot_see_or_touch_another_tenants_jobs(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, broker.client("bob") as bob:
        job = alice.submit(BATCH, request_id="a1").job
        assert job.tenant == "tenant-a"
        for action in (
            lambda: bob.get(job.job_id),
            lambda: bob.cancel(job.job_id),
            lambda: bob.explain(job.job_id),
            lambda: list(bob.watch(job.job_id)),
        ):
            with pytest.raises(JobNotFoundError):
                action()
        assert list(bob.list()) == []
        assert list(bob.list(tenant="tenant-a")) == []
        assert [j.job_id for j in alice.list()] == [job.job_id]
        assert alice.get(job.job_id).job_id == job.job_id
    with broker.client("operator") as operator:
        assert [j.job_id for j in operator.list()] == [job.job_id]


def test_no_token_or_a_bad_token_is_unauthenticated(broker: BrokerProcess) -> None:
    with broker.channel() as channel:
        stub = job_grpc.JobServiceStub(channel)
        for metadata in ((), (("authorization", "Bearer not-a-token"),)):
            with pytest.raises(grpc.RpcError) as info:
                stub.ListJobs(job_pb.ListJobsRequest(), metadata=metadata, timeout=5)
            assert isinstance(error_from_rpc_error(info.value), UnauthenticatedError)


def test_drain_and_rebalance_need_the_operator_role(broker: BrokerProcess) -> None:
    with broker.client("alice") as alice, pytest.raises(PermissionDeniedError):
        alice.drain("guian")
    with broker.channel() as channel:
        stub = reb_grpc.RebalanceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.ApplyRebalance(
                reb_pb.ApplyRebalanceRequest(), metadata=broker.metadata("alice"), timeout=5
            )
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with broker.client("operator") as operator:
        assert operator.drain("guian").status in (SiteStatus.OFFLINE, SiteStatus.DRAINING)
        operator.drain("guian", drain=False)


def test_a_site_certificate_cannot_speak_for_another_site(broker: BrokerProcess) -> None:
    assert broker.pki is not None
    spoof = ScriptedAgent(
        broker.agent_address, "zhangjiakou", credentials=broker.pki.site_credentials("horinger")
    )
    with pytest.raises(grpc.RpcError) as info:
        spoof.next("welcome")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    spoof.close()
    honest = ScriptedAgent(
        broker.agent_address, "horinger", credentials=broker.pki.site_credentials("horinger")
    )
    honest.next("welcome")
    honest.close()


def test_an_agent_without_a_certificate_is_refused_in_the_handshake(
    broker: BrokerProcess,
) -> None:
    assert broker.pki is not None
    tls_only = grpc.ssl_channel_credentials(broker.pki.ca.read_bytes())
    agent = ScriptedAgent(broker.agent_address, "horinger", credentials=tls_only)
    with pytest.raises(grpc.RpcError) as info:
        agent.next("welcome")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    agent.close()


def test_a_flooding_tenant_is_throttled_while_others_and_heartbeats_carry_on(
    broker: BrokerProcess,
) -> None:
    assert broker.pki is not None
    agent = ScriptedAgent(
        broker.agent_address, "horinger", credentials=broker.pki.site_credentials("horinger")
    )
    agent.next("welcome")
    agent.report_capacity("a800", 8)
    throttled = None
    # alice's client does not wait out the limit as the SDK would: the test wants the refusal
    no_retry = RetryPolicy(max_attempts=1)
    with broker.client("alice", retry=no_retry) as alice, broker.client("bob") as bob:
        for i in range(200):
            try:
                alice.submit({**BATCH, "name": f"f{i}"}, request_id=f"f{i}")
            except ResourceExhaustedError as exc:
                throttled = exc
                break
        assert throttled is not None, "the flood was never throttled"
        assert throttled.retry_after_s > 0
        assert bob.submit(BATCH, request_id="b1").job.tenant == "tenant-b"
        before = bob.site("horinger").last_report_unix_ms
        agent.report_capacity("a800", 8)
        wait_for(
            lambda: bob.site("horinger").last_report_unix_ms > before,
            what="the heartbeat sent during the flood",
        )
        assert bob.site("horinger").status == SiteStatus.ACTIVE
    agent.close()


_TEXT = st.text(max_size=40)
_REQUESTS = [
    (job_grpc.JobServiceStub, "GetJob", st.builds(job_pb.GetJobRequest, job_id=_TEXT)),
    (
        job_grpc.JobServiceStub,
        "ListJobs",
        st.builds(
            job_pb.ListJobsRequest,
            state=st.integers(0, 50),
            kind=st.integers(0, 50),
            site=_TEXT,
            page_size=st.integers(0, 5000),
            page_token=_TEXT,
        ),
    ),
    (
        job_grpc.JobServiceStub,
        "CancelJob",
        st.builds(job_pb.CancelJobRequest, job_id=_TEXT, reason=_TEXT),
    ),
    (
        job_grpc.JobServiceStub,
        "ExplainPlacement",
        st.builds(job_pb.ExplainPlacementRequest, job_id=_TEXT),
    ),
    (fed_grpc.FederationServiceStub, "GetSite", st.builds(fed_pb.GetSiteRequest, site_id=_TEXT)),
    (
        fed_grpc.FederationServiceStub,
        "DrainSite",
        st.builds(fed_pb.DrainSiteRequest, site_id=_TEXT, drain=st.booleans()),
    ),
]


def test_random_and_malformed_requests_never_cause_internal_errors(
    broker: BrokerProcess,
) -> None:
    """Structured random requests and raw garbage bytes to every RPC: no INTERNAL, no change."""
    with broker.client() as client:
        known = client.submit(BATCH, request_id="fuzz-anchor").job
    channel = broker.channel()
    metadata = broker.metadata("operator")

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(_REQUESTS).flatmap(lambda t: st.tuples(st.just(t), t[2])))
    def structured(case: tuple[tuple[object, str, object], object]) -> None:
        (stub_type, method, _), request = case
        stub = stub_type(channel)  # type: ignore[operator]
        try:
            getattr(stub, method)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() != grpc.StatusCode.INTERNAL, (method, request, exc.details())
            assert exc.code() != grpc.StatusCode.UNKNOWN, (method, request, exc.details())

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(_METHODS), st.binary(max_size=200))
    def garbage(method: str, payload: bytes) -> None:
        call = channel.unary_unary(method)
        try:
            call(payload, metadata=metadata, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN), (
                method,
                payload,
                exc.details(),
            )

    structured()
    garbage()
    with broker.client() as client:
        jobs = list(client.list())
        assert [j.job_id for j in jobs if j.state.is_final is False] == [known.job_id] or all(
            j.job_id == known.job_id for j in jobs
        )
        assert len(jobs) == 1, "rejected calls must not create jobs"
        assert broker.proc.poll() is None, "the broker survived"
    channel.close()


_METHODS = [
    f"/computenet.v1.JobService/{m}"
    for m in ("SubmitJob", "GetJob", "ListJobs", "CancelJob", "ExplainPlacement", "PlanJob")
] + [f"/computenet.v1.FederationService/{m}" for m in ("ListSites", "GetSite", "DrainSite")]
