"""Limits: the token bucket's bound (hypothesis), per-tenant throttling on a real server, the
per-site stream cap, the server-side deadline, and the transport options."""

from __future__ import annotations

import asyncio

import grpc
import grpc.aio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.security import LimitSettings, ServerLimits, TokenBucket, server_options
from broker.security.limits import StreamLimiter, TenantRateLimiter
from computenet.errors import DeadlineExceededError, ResourceExhaustedError
from computenet.status import error_from_rpc_error
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from tests.security.conftest import ALICE, BOB, Pki, serve


@settings(max_examples=300, deadline=None)
@given(
    rate_per_s=st.floats(0.1, 100.0),
    burst=st.integers(1, 50),
    gaps_s=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=300),
)
def test_bucket_never_admits_more_than_rate_times_time_plus_burst(
    rate_per_s: float, burst: int, gaps_s: list[float]
) -> None:
    bucket = TokenBucket(rate_per_s, burst)
    now_s, admitted = 0.0, 0
    for gap in gaps_s:
        now_s += gap
        if bucket.take(now_s) == 0.0:
            admitted += 1
        assert admitted <= rate_per_s * now_s + burst + 1e-6


@settings(max_examples=200, deadline=None)
@given(rate_per_s=st.floats(0.1, 100.0), burst=st.integers(1, 50))
def test_refused_call_waiting_the_hint_is_admitted(rate_per_s: float, burst: int) -> None:
    bucket = TokenBucket(rate_per_s, burst)
    for _ in range(burst):
        assert bucket.take(10.0) == 0.0
    wait_s = bucket.take(10.0)
    assert wait_s > 0
    assert bucket.take(10.0 + wait_s * (1 + 1e-9) + 1e-9) == 0.0


def test_bucket_ignores_a_clock_going_backwards() -> None:
    bucket = TokenBucket(1.0, 1)
    assert bucket.take(100.0) == 0.0
    assert bucket.take(50.0) > 0
    assert bucket.take(100.5) > 0
    assert bucket.take(101.0) == 0.0


def test_bucket_parameters_are_checked() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1)
    with pytest.raises(ValueError):
        TenantRateLimiter(1.0, 0)


def test_tenants_have_separate_buckets() -> None:
    limiter = TenantRateLimiter(1.0, 2, clock=lambda: 0.0)
    assert limiter.check("acme") == limiter.check("acme") == 0.0
    assert limiter.check("acme") > 0
    assert limiter.check("globex") == 0.0


def test_stream_limiter_counts_per_key() -> None:
    streams = StreamLimiter(2)
    assert streams.try_acquire("a") and streams.try_acquire("a")
    assert not streams.try_acquire("a")
    assert streams.try_acquire("b")
    streams.release("a")
    assert streams.open_streams("a") == 1
    assert streams.try_acquire("a")


async def submit(channel: grpc.aio.Channel) -> str:
    stub = job_grpc.JobServiceStub(channel)
    reply = await stub.SubmitJob(job_pb.SubmitJobRequest(request_id="r"), timeout=5)
    return str(reply.job.tenant)


def test_flooding_tenant_is_throttled_while_another_gets_through(pki: Pki) -> None:
    now_s = [1000.0]

    async def main() -> None:
        limits = LimitSettings(submit_rate_per_s=2.0, submit_burst=3)
        async with serve(pki, limits=limits, clock=lambda: now_s[0]) as h:
            alice, bob = h.client_channel(ALICE), h.client_channel(BOB)
            assert [await submit(alice) for _ in range(3)] == ["acme"] * 3
            for _ in range(5):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await submit(alice)
                error = error_from_rpc_error(err.value)
                assert isinstance(error, ResourceExhaustedError)
                assert error.retry_after_s == pytest.approx(0.5)
            assert [await submit(bob) for _ in range(3)] == ["globex"] * 3
            assert h.calls == {"SubmitJob": 6}
            now_s[0] += 0.5
            assert await submit(alice) == "acme"

    asyncio.run(main())


@pytest.mark.parametrize("separate", [False, True], ids=["combined", "separate"])
def test_unary_handler_past_the_server_deadline_is_deadline_exceeded(
    pki: Pki, separate: bool
) -> None:
    async def main() -> None:
        limits = LimitSettings(handler_timeout_s=0.2)
        async with serve(pki, limits=limits, separate=separate) as h:
            stub = job_grpc.JobServiceStub(h.client_channel(ALICE))
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.PlanJob(job_pb.PlanJobRequest(), timeout=10)
            assert isinstance(error_from_rpc_error(err.value), DeadlineExceededError)
            assert h.calls == {"PlanJob": 1}

    asyncio.run(main())


def test_server_options_enforce_keepalive_and_message_size() -> None:
    options = dict(server_options())
    assert options["grpc.max_receive_message_length"] == 4 * 1024 * 1024
    assert options["grpc.keepalive_permit_without_calls"] == 1
    # Agents ping every 20 s; the server must allow that or it answers GOAWAY too_many_pings.
    assert options["grpc.http2.min_ping_interval_without_data_ms"] <= 20_000
    assert "grpc.max_connection_age_ms" not in options
    aged = dict(server_options(ServerLimits(max_connection_age_s=3600)))
    assert aged["grpc.max_connection_age_ms"] == 3_600_000


def test_server_accepts_the_options() -> None:
    async def main() -> None:
        server = grpc.aio.server(options=server_options())
        assert server.add_insecure_port("127.0.0.1:0") > 0
        await server.start()
        await server.stop(0)

    asyncio.run(main())
