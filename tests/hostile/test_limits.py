"""Hostile input against a real broker: numbers out of range, unknown enum values, pages over
the message limit, a read-only database, read floods and password guessing."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from broker.security import LimitSettings
from broker.store import open_store
from computenet import convert
from computenet.errors import InvalidArgumentError, ResourceExhaustedError, UnavailableError
from computenet.status import error_from_rpc_error
from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import job_service_pb2_grpc as pb_grpc
from computenet.v1 import types_pb2
from tests.hostile.harness import RunningBroker, running_broker
from tests.store.factories import new_job, spec

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


def _valid_spec() -> types_pb2.JobSpec:
    return convert.spec_to_proto(
        spec("train", resources={"accelerator": "a800", "count": 1}, command=["true"])
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[RunningBroker]:
    with running_broker(tmp_path) as running:
        yield running


def _error(call: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value


@pytest.mark.parametrize("after", [2**63, 2**64 - 1])
def test_sequence_numbers_beyond_the_database_are_invalid_argument(
    broker: RunningBroker, after: int
) -> None:
    with broker.channel() as channel:
        stub = pb_grpc.JobServiceStub(channel)
        md = broker.auth(broker.user)
        one = pb.WatchJobRequest(job_id="j", after_sequence=after)
        every = pb.WatchJobsRequest(after_sequence=after)
        for call in (
            lambda: list(stub.WatchJob(one, metadata=md, timeout=5)),
            lambda: list(stub.WatchJobs(every, metadata=md, timeout=5)),
        ):
            err = _error(call)
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
            error = error_from_rpc_error(err)
            assert isinstance(error, InvalidArgumentError)
            assert [v.field for v in error.violations] == ["after_sequence"]


def test_unknown_enum_values_are_invalid_argument_not_defaults(broker: RunningBroker) -> None:
    with broker.channel() as channel:
        stub = pb_grpc.JobServiceStub(channel)
        md = broker.auth(broker.user)
        err = _error(lambda: stub.ListJobs(pb.ListJobsRequest(state=77), metadata=md, timeout=5))
        assert {v.field for v in error_from_rpc_error(err).violations} == {"state"}  # type: ignore[attr-defined]
        bad = _valid_spec()
        bad.kind = 42  # type: ignore[assignment]
        err = _error(lambda: stub.SubmitJob(pb.SubmitJobRequest(spec=bad), metadata=md, timeout=5))
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "spec.kind" in {v.field for v in error_from_rpc_error(err).violations}  # type: ignore[attr-defined]
        # nothing was stored
        assert list(stub.ListJobs(pb.ListJobsRequest(), metadata=md, timeout=5).jobs) == []


def test_pages_end_on_a_byte_budget_and_an_oversized_old_job_still_lists(tmp_path: Path) -> None:
    db_path = tmp_path / "broker.db"
    store = open_store(f"sqlite:///{db_path}")
    big = "x" * 1_500_000
    jobs = []
    for i in range(5):  # old data, written before any size limit on labels
        labels = {"blob": big} if i != 2 else {"a": "y" * 3_000_000, "b": "z" * 2_000_000}
        job_spec = spec(f"job{i}").model_copy(update={"labels": labels})
        jobs.append(new_job(f"job-{i}", tenant="acme", job_spec=job_spec))
    store.submit_jobs(jobs)
    store.close()
    with running_broker(tmp_path, db_path=db_path) as broker, broker.channel() as channel:
        raw = channel.unary_unary("/computenet.v1.JobService/ListJobs")
        seen: list[str] = []
        token = ""
        for _ in range(10):
            request = pb.ListJobsRequest(page_size=100, page_token=token)
            answer = raw(request.SerializeToString(), metadata=broker.auth(broker.user), timeout=10)
            assert len(answer) < MAX_MESSAGE_BYTES
            page = pb.ListJobsResponse.FromString(answer)
            seen += [j.job_id for j in page.jobs]
            token = page.next_page_token
            if not token:
                break
        assert seen == [f"job-{i}" for i in range(5)]
        stub = pb_grpc.JobServiceStub(channel)
        job = stub.GetJob(
            pb.GetJobRequest(job_id="job-2"), metadata=broker.auth(broker.user), timeout=10
        ).job
        assert job.job_id == "job-2" and job.ByteSize() < MAX_MESSAGE_BYTES


def test_a_read_only_database_answers_unavailable_with_a_retry_hint(broker: RunningBroker) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed")
    files = [str(broker.db_path), f"{broker.db_path}-wal"]
    with broker.channel() as channel:
        stub = pb_grpc.JobServiceStub(channel)
        md = broker.auth(broker.user)
        stub.SubmitJob(
            pb.SubmitJobRequest(spec=_valid_spec(), request_id="before"), metadata=md, timeout=10
        )
        if subprocess.run(["chattr", "+i", *files], capture_output=True).returncode != 0:
            pytest.skip("this file system cannot make files immutable")
        try:
            during = pb.SubmitJobRequest(spec=_valid_spec(), request_id="during")
            err = _error(lambda: stub.SubmitJob(during, metadata=md, timeout=10))
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
            error = error_from_rpc_error(err)
            assert isinstance(error, UnavailableError) and error.retry_after_s > 0
            assert "unavailable" in error.message
            # reads still work, and the refused job was not half-written
            listed = stub.ListJobs(pb.ListJobsRequest(), metadata=md, timeout=10).jobs
            assert len(listed) == 1
        finally:
            subprocess.run(["chattr", "-i", *files], check=True)
        stub.SubmitJob(
            pb.SubmitJobRequest(spec=_valid_spec(), request_id="after"), metadata=md, timeout=10
        )
        assert len(stub.ListJobs(pb.ListJobsRequest(), metadata=md, timeout=10).jobs) == 2


def test_a_tenant_flooding_reads_is_limited_and_another_tenant_still_submits(
    tmp_path: Path,
) -> None:
    limits = LimitSettings(
        submit_rate_per_s=1000.0, submit_burst=1000, read_rate_per_s=1.0, read_burst=5,
        auth_failures_burst=1000,
    )  # fmt: skip
    with running_broker(tmp_path, limits=limits) as broker, broker.channel() as channel:
        stub = pb_grpc.JobServiceStub(channel)
        flood = broker.auth(broker.user)
        codes = []
        for _ in range(20):
            try:
                stub.ListJobs(pb.ListJobsRequest(), metadata=flood, timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as err:
                codes.append(err.code())  # type: ignore[attr-defined]
                last = err
        assert codes.count(grpc.StatusCode.OK) <= 6
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= 14
        limited = error_from_rpc_error(last)
        assert isinstance(limited, ResourceExhaustedError) and limited.retry_after_s > 0
        # the other tenant reads and submits unhindered
        other = broker.auth(broker.other)
        stub.ListJobs(pb.ListJobsRequest(), metadata=other, timeout=5)
        stub.SubmitJob(pb.SubmitJobRequest(spec=_valid_spec()), metadata=other, timeout=5)
        # and the flooding tenant can still submit: reads and submissions are counted apart
        stub.SubmitJob(pb.SubmitJobRequest(spec=_valid_spec()), metadata=flood, timeout=5)


def test_guessing_tokens_is_throttled_per_peer_without_checking_them(tmp_path: Path) -> None:
    limits = LimitSettings(
        submit_rate_per_s=1000.0, submit_burst=1000, read_rate_per_s=1000.0, read_burst=1000,
        auth_failures_burst=10, auth_failures_per_s=0.01,
    )  # fmt: skip
    with running_broker(tmp_path, limits=limits) as broker, broker.channel() as channel:
        stub = pb_grpc.JobServiceStub(channel)
        codes = []
        for i in range(40):
            try:
                stub.GetJob(
                    pb.GetJobRequest(job_id="j"), metadata=broker.auth(f"cnt_guess{i}"), timeout=5
                )
            except grpc.RpcError as err:
                codes.append(err.code())  # type: ignore[attr-defined]
        assert codes[:10] == [grpc.StatusCode.UNAUTHENTICATED] * 10
        assert codes[10:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 30
        # even the right token is refused from this address until the cooldown ends
        err = _error(
            lambda: stub.GetJob(
                pb.GetJobRequest(job_id="j"), metadata=broker.auth(broker.user), timeout=5
            )
        )
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_from_rpc_error(err).retry_after_s > 0  # type: ignore[attr-defined]
