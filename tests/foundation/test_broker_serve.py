"""`computenet-broker serve` binds, reports SERVING, lists its services, and stops on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from computenet.v1 import job_service_pb2, job_service_pb2_grpc
from tests.support.pki import Pki
from tests.support.processes import BrokerProcess, start_broker

EXPECTED = {
    "computenet.v1.SiteService",
    "computenet.v1.JobService",
    "computenet.v1.FederationService",
    "computenet.v1.RebalanceService",
}


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[BrokerProcess]:
    started = start_broker(tmp_path, pki=pki)
    try:
        yield started
    finally:
        if started.proc.poll() is None:
            started.proc.kill()
            started.proc.wait(timeout=10)


def test_health_and_reflection(broker: BrokerProcess) -> None:
    with broker.channel() as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", *EXPECTED):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        replies = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in replies for s in r.list_services_response.service}
    assert names >= EXPECTED


def test_sigterm_stops_gracefully(broker: BrokerProcess) -> None:
    broker.proc.send_signal(signal.SIGTERM)
    assert broker.proc.wait(timeout=15) == 0


def test_unknown_method_is_unimplemented_not_internal(broker: BrokerProcess) -> None:
    with broker.channel() as channel:
        generic = channel.unary_unary(
            "/computenet.v1.JobService/NoSuchMethod",
            request_serializer=job_service_pb2.GetJobRequest.SerializeToString,
            response_deserializer=job_service_pb2.GetJobResponse.FromString,
        )
        with pytest.raises(grpc.RpcError) as info:
            generic(
                job_service_pb2.GetJobRequest(job_id="x"), timeout=5, metadata=broker.metadata()
            )
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert job_service_pb2_grpc.JobServiceStub(channel) is not None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["serve", "--no-such-flag"], "No such option"),
        (["serve", "--listen", "nonsense"], "invalid address"),
        (["serve", "--listen", "127.0.0.1:70000"], "port must be"),
        (["serve", "--suspect-after", "abc"], "Invalid value"),
    ],
)
def test_bad_cli_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
