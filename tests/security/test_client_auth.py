"""Clients on the TLS port: bearer tokens, roles, open services, and the bound principal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from computenet.errors import PermissionDeniedError, UnauthenticatedError
from computenet.status import error_from_rpc_error
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import rebalance_service_pb2 as reb_pb
from computenet.v1 import rebalance_service_pb2_grpc as reb_grpc
from tests.security.conftest import ALICE, BOB, ROOT, Harness, Pki, serve


def run(pki: Pki, scenario: Callable[[Harness], Awaitable[None]]) -> None:
    async def main() -> None:
        async with serve(pki) as harness:
            await scenario(harness)

    asyncio.run(main())


async def get_job(channel: grpc.aio.Channel, **kwargs: Any) -> job_pb.GetJobResponse:
    stub = job_grpc.JobServiceStub(channel)
    reply: job_pb.GetJobResponse = await stub.GetJob(
        job_pb.GetJobRequest(job_id="j-1"), timeout=5, **kwargs
    )
    return reply


@pytest.mark.parametrize(
    ("case", "token", "metadata"),
    [
        ("no token", None, ()),
        ("unknown token", "cnt_" + "x" * 43, ()),
        ("token of another shape", ALICE[:-1], ()),
        ("not a bearer scheme", None, (("authorization", f"Basic {ALICE}"),)),
        ("empty bearer", None, (("authorization", "Bearer "),)),
    ],
)
def test_bad_client_credentials_are_unauthenticated_before_the_handler(
    pki: Pki, case: str, token: str | None, metadata: tuple[tuple[str, str], ...]
) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await get_job(h.client_channel(token), metadata=metadata)
        assert isinstance(error_from_rpc_error(err.value), UnauthenticatedError), case
        assert h.calls == {}
        assert h.stack.counters.refused == {"UNAUTHENTICATED": 1}
        assert h.stack.counters.admitted == 0

    run(pki, scenario)


def test_valid_token_reaches_the_handler_with_its_principal(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        alice = await get_job(h.client_channel(ALICE))
        bob = await get_job(h.client_channel(BOB))
        assert (alice.job.job_id, alice.job.tenant) == ("alice", "acme")
        assert (bob.job.job_id, bob.job.tenant) == ("bob", "globex")
        assert h.calls == {"GetJob": 2}
        assert h.stack.counters.admitted == 2

    run(pki, scenario)


def test_principal_is_visible_in_a_streaming_handler(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        stub = job_grpc.JobServiceStub(h.client_channel(BOB))
        replies = [r async for r in stub.WatchJob(job_pb.WatchJobRequest(job_id="j"), timeout=5)]
        assert [r.event.job_id for r in replies] == ["globex", "globex"]

    run(pki, scenario)


def test_user_calling_operator_methods_is_permission_denied(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        channel = h.client_channel(ALICE)
        calls = [
            fed_grpc.FederationServiceStub(channel).DrainSite(
                fed_pb.DrainSiteRequest(site_id="site-a", drain=True), timeout=5
            ),
            reb_grpc.RebalanceServiceStub(channel).ApplyRebalance(
                reb_pb.ApplyRebalanceRequest(), timeout=5
            ),
            reb_grpc.RebalanceServiceStub(channel).ListRebalanceRuns(
                reb_pb.ListRebalanceRunsRequest(), timeout=5
            ),
        ]
        for call in calls:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert isinstance(error_from_rpc_error(err.value), PermissionDeniedError)
        assert h.calls == {}
        assert h.stack.counters.refused == {"PERMISSION_DENIED": 3}

    run(pki, scenario)


def test_operator_may_drain_and_rebalance(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        channel = h.client_channel(ROOT)
        drained = await fed_grpc.FederationServiceStub(channel).DrainSite(
            fed_pb.DrainSiteRequest(site_id="site-a", drain=True), timeout=5
        )
        applied = await reb_grpc.RebalanceServiceStub(channel).ApplyRebalance(
            reb_pb.ApplyRebalanceRequest(), timeout=5
        )
        assert drained.site.site_id == "site-a"
        assert applied.run.run_id == "r-1"
        assert h.calls == {"DrainSite": 1, "ApplyRebalance": 1}

    run(pki, scenario)


def test_users_may_call_the_open_federation_methods(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        stub = fed_grpc.FederationServiceStub(h.client_channel(ALICE))
        await stub.ListSites(fed_pb.ListSitesRequest(), timeout=5)
        assert h.calls == {"ListSites": 1}

    run(pki, scenario)


def test_health_checking_needs_no_credentials(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        stub = health_pb2_grpc.HealthStub(h.client_channel(None))
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        assert h.stack.counters.refused_total == 0

    run(pki, scenario)


def test_unknown_method_stays_unimplemented(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        channel = h.client_channel(None)
        method = channel.unary_unary("/computenet.v1.JobService/NoSuchMethod")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await method(b"", timeout=5)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED

    run(pki, scenario)
