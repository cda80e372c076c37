"""Submissions no site could run, or too big to list, are refused with a field error: by the SDK
before any call, and by a real broker (a subprocess on loopback) on the raw wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from computenet import Client
from computenet.errors import InvalidArgumentError, SpecError
from computenet.spec import JobSpec, parse_spec
from computenet.status import error_from_rpc_error
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import types_pb2
from tests.sdk.fake_broker import RunningFake
from tests.support.processes import BrokerProcess, start_broker

BATCH: dict[str, Any] = {
    "name": "b",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.01,
    "command": ["true"],
}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    started = start_broker(Path(tmp_path_factory.mktemp("broker")))
    try:
        yield started
    finally:
        started.proc.kill()
        started.proc.wait(timeout=10)


def _raw(**fields: Any) -> job_pb.SubmitJobRequest:
    """A wire request built without the SDK's checks, so the broker's own are tested."""
    spec = types_pb2.JobSpec(
        name="b",
        kind=types_pb2.JOB_KIND_BATCH,
        resources=types_pb2.Resources(accelerator="a800", count=1),
        duration_hours=0.01,
    )
    spec.command.extend(fields.pop("command", ["true"]))
    for key, value in fields.pop("labels", {}).items():
        spec.labels[key] = value
    for name, value in fields.items():
        setattr(spec, name, value)
    return job_pb.SubmitJobRequest(spec=spec, request_id="raw")


def _refusal(broker: BrokerProcess, request: job_pb.SubmitJobRequest) -> InvalidArgumentError:
    with broker.channel() as channel, pytest.raises(grpc.RpcError) as info:
        job_grpc.JobServiceStub(channel).SubmitJob(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    error = error_from_rpc_error(info.value)
    assert isinstance(error, InvalidArgumentError)
    return error


@pytest.mark.parametrize(
    ("fields", "field", "says"),
    [
        ({"command": ["python", "-c", "print(1)\x00"]}, "spec.command.2", "NUL"),
        ({"command": ["\x00"]}, "spec.command.0", "NUL"),
        ({"name": "a\x00b"}, "spec.name", "NUL"),
        ({"labels": {"team": "v" * 2_500_000}}, "spec.labels.team", "256"),
        ({"labels": {"bad key": "v"}}, "spec.labels.bad key", "label name"),
        ({"command": ["x" * 4000] * 30}, "spec", "65536"),
    ],
    ids=["nul-in-command", "nul-only", "nul-in-name", "huge-label", "bad-label-key", "huge-spec"],
)
def test_the_broker_refuses_on_the_raw_wire_with_a_field_violation(
    broker: BrokerProcess, fields: dict[str, Any], field: str, says: str
) -> None:
    error = _refusal(broker, _raw(**fields))
    descriptions = {v.field: v.description for v in error.violations}
    assert field in descriptions, descriptions
    assert says in descriptions[field]
    with broker.client() as client:
        assert list(client.list()) == []  # nothing stored, and listing still works


def test_the_sdk_refuses_a_nul_command_before_any_call(fake: RunningFake) -> None:
    with Client(address=fake.address) as client:
        with pytest.raises(SpecError) as info:
            client.submit({**BATCH, "command": ["sh", "-c", "true\x00"]})
        assert [v.field for v in info.value.violations] == ["spec.command.2"]
        # A JobSpec that skipped validation is checked again, not sent.
        unchecked = parse_spec(BATCH).model_copy(update={"command": ("a\x00",)})
        with pytest.raises(SpecError):
            client.submit(unchecked)
        with pytest.raises(SpecError):
            client.plan(JobSpec.model_construct(**{**BATCH, "name": "x\ud800"}))
    assert fake.broker.script.submit_request_ids == []


def test_the_sdk_and_the_broker_agree_on_what_is_accepted(broker: BrokerProcess) -> None:
    at_bounds = {**BATCH, "labels": {"team": "v" * 256}, "command": ["sh", "-c", "a\n\tb"]}
    with broker.client() as client:
        job = client.submit(at_bounds, request_id="bounds").job
        assert client.get(job.job_id).spec == parse_spec(at_bounds)
        client.cancel(job.job_id)
