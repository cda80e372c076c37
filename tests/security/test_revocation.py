"""Revocation without a restart: a site certificate or a token revoked while its stream is
open ends that stream (UNAUTHENTICATED) within seconds, over real mTLS and TLS."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import grpc.aio
import pytest
from typer.testing import CliRunner

from broker.cli import app as broker_cli
from broker.security.certs import serial_hex
from broker.security.revocation import RevocationFile
from broker.security.tokens import TokenFile
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from tests.security.conftest import ALICE, BOB, Pki, serve, write_token_file
from tests.security.test_mtls import hello, open_stream

ACCEPTANCE_S = 10.0
"""A revoked site certificate is disconnected within 10 s (issue acceptance)."""


def _cli(*args: str) -> None:
    result = CliRunner().invoke(broker_cli, list(args))
    assert result.exit_code == 0, result.output


async def _ended_with(call: grpc.aio.Call, within_s: float) -> grpc.StatusCode:
    """Read until the stream ends; its status code."""

    async def drain() -> None:
        while await call.read() is not grpc.aio.EOF:
            pass

    try:
        await asyncio.wait_for(drain(), within_s)
    except grpc.aio.AioRpcError as err:
        return err.code()
    return await call.code()


@pytest.mark.parametrize("by", ["serial", "file", "site"])
def test_a_revoked_site_certificate_is_disconnected_within_seconds(
    pki: Pki, tmp_path: Path, by: str
) -> None:
    path = tmp_path / "revocations.yaml"
    path.write_text("")
    revocations = RevocationFile(path, check_interval_s=0.2)

    async def main() -> None:
        async with serve(pki, revocations=revocations) as h:
            call, site = await open_stream(h.agent_channel("site-a"), "site-a")
            other, _ = await open_stream(h.agent_channel("site-b"), "site-b")
            assert site == "site-a"
            cert = pki.layout.site_cert("site-a")
            target = {"serial": serial_hex(cert.read_bytes()), "file": str(cert), "site": "site-a"}
            started = time.monotonic()
            extra = ["--site"] if by == "site" else []
            await asyncio.to_thread(
                _cli, "certs", "revoke", target[by], "--revocations", str(path), *extra
            )
            code = await _ended_with(call, ACCEPTANCE_S)
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert time.monotonic() - started < ACCEPTANCE_S
            # the site cannot come back, and the other site's stream is untouched
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await open_stream(h.agent_channel("site-a"), "site-a")
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            await other.write(hello("site-b"))
            assert other.done() is False
            await other.done_writing()
            assert await _ended_with(other, 5) == grpc.StatusCode.OK

    asyncio.run(main())


def test_a_revoked_token_ends_its_open_watch(pki: Pki, tmp_path: Path) -> None:
    tokens_path = write_token_file(tmp_path / "tokens.yaml")
    tokens = TokenFile(tokens_path, check_interval_s=0.2)

    async def main() -> None:
        async with serve(pki, tokens=tokens) as h:
            alice = job_grpc.JobServiceStub(h.client_channel(ALICE)).WatchJobs(
                job_pb.WatchJobsRequest()
            )
            bob = job_grpc.JobServiceStub(h.client_channel(BOB)).WatchJobs(
                job_pb.WatchJobsRequest()
            )
            assert (await alice.read()).event.job_id == "acme"
            assert (await bob.read()).event.job_id == "globex"
            await asyncio.to_thread(_cli, "tokens", "revoke", "alice", "--file", str(tokens_path))
            assert await _ended_with(alice, ACCEPTANCE_S) == grpc.StatusCode.UNAUTHENTICATED
            assert not bob.done()  # bob's token still holds
            bob.cancel()

    asyncio.run(main())
