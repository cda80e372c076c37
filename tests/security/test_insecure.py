"""Insecure mode only on loopback and loudly; client credential helpers; the second port."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import grpc
import grpc.aio
import pytest

from broker.security import (
    AdditionalPort,
    AuthSettings,
    InsecureNotAllowedError,
    Principal,
    Role,
    check_insecure_allowed,
)
from broker.security.stack import SecurityStack
from computenet import tls
from computenet.address import Address
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import site_service_pb2 as site_pb
from computenet.v1 import site_service_pb2_grpc as site_grpc
from tests.security import servicers
from tests.security.conftest import ALICE, Pki, token_store


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.0.1", "::1", "[::1]", "localhost"])
def test_insecure_is_allowed_on_loopback_with_a_warning(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    check_insecure_allowed(host, insecure=True)
    assert "INSECURE MODE" in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.1.2.3", "broker.example.cn"])
def test_insecure_is_refused_elsewhere(host: str) -> None:
    with pytest.raises(InsecureNotAllowedError):
        check_insecure_allowed(host, insecure=True)
    check_insecure_allowed(host, insecure=False)


def test_credentials_from_env(pki: Pki) -> None:
    loop, remote = Address("127.0.0.1", 1), Address("10.0.0.5", 1)
    ca = str(pki.layout.ca_cert)
    cert, key = str(pki.layout.site_cert("site-a")), str(pki.layout.site_key("site-a"))
    assert tls.credentials_from_env(remote, {}) is None
    assert tls.credentials_from_env(loop, {tls.ENV_TOKEN: "t"}) is not None
    with pytest.raises(tls.CredentialsError):
        tls.credentials_from_env(remote, {tls.ENV_TOKEN: "t"})
    assert tls.credentials_from_env(remote, {tls.ENV_CA: ca, tls.ENV_TOKEN: "t"}) is not None
    env = {tls.ENV_CA: ca, tls.ENV_CERT: cert, tls.ENV_KEY: key}
    assert tls.credentials_from_env(remote, env) is not None
    with pytest.raises(tls.CredentialsError):
        tls.credentials_from_env(remote, {tls.ENV_CERT: cert, tls.ENV_KEY: key})
    with pytest.raises(tls.CredentialsError):
        tls.credentials_from_env(remote, {tls.ENV_CA: ca, tls.ENV_CERT: cert})
    with pytest.raises(tls.CredentialsError):
        tls.credentials_from_env(remote, {tls.ENV_CA: "/nonexistent/ca.pem"})


def test_read_pem_refuses_non_pem(tmp_path: Path) -> None:
    path = tmp_path / "x.pem"
    path.write_text("hello")
    with pytest.raises(tls.CredentialsError):
        tls.read_pem(path)
    assert tls.bearer_metadata("t") == (("authorization", "Bearer t"),)
    assert tls.channel_options("broker.cn") == [("grpc.ssl_target_name_override", "broker.cn")]


def test_insecure_loopback_broker_with_tokens_and_trusted_hellos() -> None:
    async def main() -> None:
        check_insecure_allowed("127.0.0.1", insecure=True)
        settings = AuthSettings(tokens=token_store(), require_site_certificate=False)
        stack = SecurityStack.build(settings)
        server = grpc.aio.server(interceptors=stack.interceptors)
        calls = servicers.Calls()
        job_grpc.add_JobServiceServicer_to_server(servicers.JobService(calls), server)  # type: ignore[abstract]
        site_grpc.add_SiteServiceServicer_to_server(
            servicers.SiteService(calls, require_certificate=False), server
        )
        extra = AdditionalPort(Address("127.0.0.1", 0), None)
        extra(server)
        assert extra.bound is not None and extra.bound.port > 0
        await server.start()
        target = str(extra.bound)
        try:
            creds = tls.loopback_channel_credentials(ALICE)
            async with grpc.aio.secure_channel(target, creds) as channel:
                reply = await job_grpc.JobServiceStub(channel).GetJob(
                    job_pb.GetJobRequest(), timeout=5
                )
                assert reply.job.tenant == "acme"
            async with grpc.aio.insecure_channel(target) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await job_grpc.JobServiceStub(channel).GetJob(job_pb.GetJobRequest(), timeout=5)
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
                call = site_grpc.SiteServiceStub(channel).Connect(timeout=5)
                await call.write(site_pb.ConnectRequest(hello=site_pb.Hello(site_id="demo")))
                assert (await call.read()).welcome.broker_epoch == "demo"
                await call.done_writing()
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_anonymous_principal_serves_tokenless_clients_only_when_configured() -> None:
    async def main() -> None:
        demo = Principal("demo", Role.OPERATOR, "anonymous")
        stack = SecurityStack.build(AuthSettings(require_site_certificate=False, anonymous=demo))
        server = grpc.aio.server(interceptors=stack.interceptors)
        job_grpc.add_JobServiceServicer_to_server(servicers.JobService(servicers.Calls()), server)  # type: ignore[abstract]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = job_grpc.JobServiceStub(channel)
                reply = await stub.GetJob(job_pb.GetJobRequest(), timeout=5)
                assert (reply.job.job_id, reply.job.tenant) == ("anonymous", "demo")
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.GetJob(job_pb.GetJobRequest(), metadata=tls.bearer_metadata("x"))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await server.stop(0)

    asyncio.run(main())
