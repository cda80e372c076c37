"""The SDK waits out a broker's rate limit when told how long, and fails at once otherwise."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from broker.security.limits import LimitSettings
from computenet import Client, RetryPolicy
from computenet.errors import ResourceExhaustedError
from computenet.v1 import job_service_pb2 as pb
from computenet.v1 import job_service_pb2_grpc as pb_grpc
from tests.hostile.harness import running_broker

# two reads at once, then one every half second
LIMITS = LimitSettings(
    submit_rate_per_s=1000.0, submit_burst=1000, read_rate_per_s=2.0, read_burst=2,
    auth_failures_burst=1000,
)  # fmt: skip


def test_reads_past_the_limit_succeed_after_the_wait_the_broker_names(tmp_path: Path) -> None:
    with running_broker(tmp_path, limits=LIMITS) as broker:
        with Client(address=str(broker.address), token=broker.user) as client:
            answers = [client.sites() for _ in range(5)]
        assert len({len(sites) for sites in answers}) == 1 and answers[0]
        # the same burst on the raw wire is refused: the SDK above really was limited
        with broker.channel() as channel:
            stub = pb_grpc.JobServiceStub(channel)
            codes = []
            for _ in range(5):
                try:
                    stub.ListJobs(pb.ListJobsRequest(), metadata=broker.auth(broker.user))
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as err:
                    codes.append(err.code())  # type: ignore[attr-defined]
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes


def test_a_limit_asking_for_a_longer_wait_than_the_policy_allows_fails_at_once(
    tmp_path: Path,
) -> None:
    policy = RetryPolicy(max_rate_limit_wait_s=0.1)
    with running_broker(tmp_path, limits=LIMITS) as broker:
        client = Client(address=str(broker.address), token=broker.user, retry=policy)
        with client, pytest.raises(ResourceExhaustedError) as refused:
            for _ in range(5):
                client.sites()
        assert refused.value.retry_after_s > 0.1
