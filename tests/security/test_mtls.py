"""Agents on the mTLS port: the negative matrix (F1, F2) on a real TLS server, and positives."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from broker.security import LimitSettings
from computenet.errors import (
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
)
from computenet.status import error_from_rpc_error
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import site_service_pb2 as site_pb
from computenet.v1 import site_service_pb2_grpc as site_grpc
from tests.security.conftest import ALICE, Harness, Pki, serve


def run(pki: Pki, scenario: Callable[[Harness], Awaitable[None]], **kwargs: Any) -> None:
    async def main() -> None:
        async with serve(pki, **kwargs) as harness:
            await scenario(harness)

    asyncio.run(main())


def hello(site_id: str) -> site_pb.ConnectRequest:
    return site_pb.ConnectRequest(hello=site_pb.Hello(site_id=site_id, epoch="e1"))


async def open_stream(channel: grpc.aio.Channel, claimed: str) -> tuple[Any, str]:
    """Send a hello and return the live call and the site id the broker welcomed."""
    call = site_grpc.SiteServiceStub(channel).Connect(timeout=10)
    # The broker may refuse the call before the hello is written; the write then fails with
    # gRPC core's own error, and the read below raises the call's real status.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await call.write(hello(claimed))
    reply = await call.read()
    return call, reply.welcome.broker_epoch


async def connect_once(channel: grpc.aio.Channel, claimed: str) -> str:
    call, site = await open_stream(channel, claimed)
    await call.done_writing()
    return site


@pytest.mark.parametrize(
    ("case", "site", "foreign"),
    [
        ("no client certificate", None, False),
        ("certificate from another CA", "site-a", True),
        ("expired certificate", "expired", False),
        ("certificate not yet valid", "future", False),
    ],
)
def test_handshake_refuses_and_no_handler_runs(
    pki: Pki, case: str, site: str | None, foreign: bool
) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await connect_once(h.agent_channel(site, foreign=foreign), site or "site-a")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE, case
        assert h.calls == {}
        assert h.stack.counters.admitted == 0
        assert h.stack.counters.refused_total == 0  # refused before any interceptor ran

    run(pki, scenario)


def test_certificate_without_client_auth_usage_is_refused(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await connect_once(h.agent_channel("server-usage"), "server-usage")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE  # "unsupported certificate purpose"
        assert h.calls == {}
        assert h.stack.counters.admitted == 0
        assert h.stack.counters.refused_total == 0

    run(pki, scenario)


@pytest.mark.parametrize("site", ["revoked", "gone"])
def test_revoked_certificate_is_unauthenticated_before_the_handler(pki: Pki, site: str) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await connect_once(h.agent_channel(site), site)
        assert isinstance(error_from_rpc_error(err.value), UnauthenticatedError)
        assert h.calls == {}
        assert h.stack.counters.refused == {"UNAUTHENTICATED": 1}
        assert h.stack.counters.admitted == 0

    run(pki, scenario)


def test_site_claiming_another_site_in_its_hello_is_denied(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await connect_once(h.agent_channel("site-a"), "site-b")
        assert isinstance(error_from_rpc_error(err.value), PermissionDeniedError)
        assert "site-a" in (err.value.details() or "")

    run(pki, scenario)


def test_valid_site_certificate_connects_and_the_handler_sees_its_site(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        assert await connect_once(h.agent_channel("site-a"), "site-a") == "site-a"
        assert await connect_once(h.agent_channel("site-b"), "") == "site-b"
        assert h.site_service.seen_sites == ["site-a", "site-b"]
        assert h.stack.counters.admitted == 2
        assert h.stack.counters.refused_total == 0

    run(pki, scenario)


def test_site_certificate_is_no_client_credential(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        stub = job_grpc.JobServiceStub(h.agent_channel("site-a"))
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetJob(job_pb.GetJobRequest(job_id="j"), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert h.calls == {}

    run(pki, scenario)


def test_client_token_is_no_site_credential(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await connect_once(h.client_channel(ALICE), "site-a")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert h.calls == {}

    run(pki, scenario)


def test_third_stream_of_a_site_is_resource_exhausted(pki: Pki) -> None:
    async def scenario(h: Harness) -> None:
        channel = h.agent_channel("site-a")
        first, _ = await open_stream(channel, "site-a")
        second, _ = await open_stream(channel, "site-a")
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await open_stream(channel, "site-a")
        error = error_from_rpc_error(err.value)
        assert isinstance(error, ResourceExhaustedError)
        assert error.retry_after_s == pytest.approx(5.0)
        assert await connect_once(h.agent_channel("site-b"), "site-b") == "site-b"
        await first.done_writing()
        await first.wait_for_connection()
        assert await first.code() == grpc.StatusCode.OK
        third, site = await open_stream(channel, "site-a")
        assert site == "site-a"
        for call in (second, third):
            await call.done_writing()
            assert await call.code() == grpc.StatusCode.OK

    run(pki, scenario, limits=LimitSettings(max_streams_per_site=2))
