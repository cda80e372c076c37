"""A real broker revokes a connected agent's site certificate without a restart: its open
Connect stream over mTLS ends within 10 s and the site is disconnected."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from typer.testing import CliRunner

from broker.cli import app as broker_cli
from broker.security import CaLayout, init_ca, issue_site
from computenet import tls
from computenet.v1 import site_service_pb2 as site_pb
from computenet.v1 import site_service_pb2_grpc as site_grpc
from tests.hostile.harness import running_broker
from tests.support.waiting import wait_for
from topology import default_topology

ACCEPTANCE_S = 10.0


def _requests(
    outbox: queue.Queue[site_pb.ConnectRequest | None],
) -> Iterator[site_pb.ConnectRequest]:
    while (item := outbox.get()) is not None:
        yield item


def test_revoking_a_connected_sites_certificate_ends_its_stream_within_10_s(
    tmp_path: Path,
) -> None:
    site = default_topology().sites[0].id
    ca_dir = tmp_path / "pki"
    init_ca(ca_dir, days=30)
    issue_site(ca_dir, site, days=30)
    layout = CaLayout(ca_dir)
    revoked = tmp_path / "revoked.yaml"
    revoked.write_text("")
    with running_broker(tmp_path, tls_dir=ca_dir, revocations_path=revoked) as running:
        agent_address = running.broker.agent_address
        assert agent_address is not None
        creds = tls.site_channel_credentials(
            layout.ca_cert.read_bytes(),
            layout.site_cert(site).read_bytes(),
            layout.site_key(site).read_bytes(),
        )
        outbox: queue.Queue[site_pb.ConnectRequest | None] = queue.Queue()
        with grpc.secure_channel(str(agent_address), creds) as channel:
            responses = site_grpc.SiteServiceStub(channel).Connect(_requests(outbox), timeout=60)
            try:
                outbox.put(site_pb.ConnectRequest(hello=site_pb.Hello(site_id=site, epoch="e1")))
                assert next(responses).WhichOneof("msg") == "welcome"
                wait_for(lambda: running.broker.sessions.get(site) is not None, timeout_s=10)
                started = time.monotonic()
                result = CliRunner().invoke(
                    broker_cli,
                    ["certs", "revoke", str(layout.site_cert(site)), "--revocations", str(revoked)],
                )
                assert result.exit_code == 0, result.output
                with pytest.raises(grpc.RpcError) as info:
                    for _ in responses:  # heartbeats and the like until the stream ends
                        pass
                assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
                assert time.monotonic() - started < ACCEPTANCE_S
                wait_for(lambda: running.broker.sessions.get(site) is None, timeout_s=10)
            finally:
                outbox.put(None)
