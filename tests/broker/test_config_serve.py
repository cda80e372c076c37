"""A real `computenet-broker serve --config` runs with the file's settings, flags winning."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from computenet import Client
from computenet.convert import spec_to_proto
from computenet.errors import ResourceExhaustedError
from computenet.spec import JobSpec
from computenet.spec_limits import ACCEPTED
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from tests.support.processes import wait_for_line

# No --listen, --db, --insecure or --metrics-listen flags: all of them come from this file.
CONFIG = """\
listen:
  grpc: 127.0.0.1:0
  metrics: 127.0.0.1:0
store:
  url: sqlite:///{db}
rebalance:
  every_s: 0
limits:
  submit_rate_per_s: 0.001   # one token per ~17 minutes: the second submission must wait
  submit_burst: 1
security:
  insecure: true
"""
BATCH = {
    "name": "cfg",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.1,
    "command": ["true"],
}


@contextmanager
def _serving(tmp_path: Path, *flags: str, extra: str = "") -> Iterator[tuple[str, str]]:
    """A broker started from the config file (plus `extra` sections); yields its client and
    metrics addresses."""
    config = tmp_path / "broker.yaml"
    config.write_text(CONFIG.format(db=tmp_path / "broker.db") + extra)
    with open(tmp_path / "broker.log", "a") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "broker", "serve", "--config", str(config), *flags],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            address = wait_for_line(proc, re.compile(r"listening on (\S+)")).group(1)
            metrics = wait_for_line(proc, re.compile(r"metrics on (\S+)")).group(1)
            yield address, metrics
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_serve_takes_addresses_security_and_limits_from_the_file(tmp_path: Path) -> None:
    with _serving(tmp_path) as (address, metrics):
        assert not address.endswith(":50051") and not metrics.endswith(":0")
        with Client(address=address) as client:
            client.submit({**BATCH, "name": "first"}, request_id="first")
            with pytest.raises(ResourceExhaustedError):
                client.submit({**BATCH, "name": "second"}, request_id="second")


def test_a_flag_beats_the_file(tmp_path: Path) -> None:
    with _serving(tmp_path, "--submit-rate", "0") as (address, _), Client(address=address) as c:
        for name in ("first", "second", "third"):
            assert c.submit({**BATCH, "name": name}, request_id=name).job.spec.name == name


def test_the_transport_section_limits_the_message_size(tmp_path: Path) -> None:
    transport = "transport:\n  max_message_bytes: 65536\n"
    # 40 arguments of 4000 characters: a request of some 160 kB. The SDK would refuse a spec
    # that big (more than 64 KiB), so it goes out on a raw stub, as any client could send it.
    large = {**BATCH, "name": "large", "command": ["echo"] + ["x" * 4000] * 40}
    request = job_pb.SubmitJobRequest(
        spec=spec_to_proto(JobSpec.model_validate(large, context=ACCEPTED)), request_id="large"
    )
    with _serving(tmp_path, extra=transport) as (address, _), Client(address=address) as client:
        with grpc.insecure_channel(address) as channel, pytest.raises(grpc.RpcError) as info:
            job_grpc.JobServiceStub(channel).SubmitJob(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in (info.value.details() or "")
        # refused by the transport before the rate limiter: the one token is still there
        assert client.submit(BATCH, request_id="small").job.spec.name == "cfg"
