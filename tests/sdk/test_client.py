"""The sync and async clients against a scripted broker stand-in on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from computenet import (
    AsyncClient,
    Client,
    FieldViolation,
    InvalidArgumentError,
    JobNotFoundError,
    JobState,
    SiteNotFoundError,
    SpecError,
    UnavailableError,
)
from computenet.client import RetryPolicy
from tests.sdk.conftest import FAST_RETRY
from tests.sdk.fake_broker import PLACEMENT, RunningFake

SPEC: dict[str, Any] = {
    "name": "smoke",
    "kind": "batch",
    "resources": {"accelerator": "a800", "count": 1},
    "duration_hours": 0.01,
    "command": ["sh", "-c", "echo hello"],
}


def _client(fake: RunningFake, **kwargs: Any) -> Client:
    return Client(address=fake.address, timeout_s=5, retry=FAST_RETRY, **kwargs)


def test_submit_retries_unavailable_with_the_same_request_id(fake: RunningFake) -> None:
    fake.broker.script.submit_unavailable = 2
    with _client(fake) as client:
        result = client.submit(SPEC)
    ids = fake.broker.script.submit_request_ids
    assert len(ids) == 3 and len(set(ids)) == 1 and ids[0]
    assert result.job.request_id == ids[0]
    assert result.job.state is JobState.PENDING and not result.duplicate


def test_submit_with_a_known_request_id_is_a_duplicate(fake: RunningFake) -> None:
    with _client(fake) as client:
        first = client.submit(SPEC, request_id="r-1")
        again = client.submit(SPEC, request_id="r-1")
    assert again.duplicate and again.job.job_id == first.job.job_id


def test_submit_gives_up_after_bounded_retries(fake: RunningFake) -> None:
    fake.broker.script.submit_unavailable = 100
    with _client(fake) as client, pytest.raises(UnavailableError):
        client.submit(SPEC)
    assert len(fake.broker.script.submit_request_ids) == FAST_RETRY.max_attempts


def test_watch_resumes_from_the_last_sequence_seen(fake: RunningFake) -> None:
    with _client(fake) as client:
        job_id = client.submit(SPEC).job.job_id
        for state in (JobState.PLACED, JobState.RUNNING):
            fake.broker.add_event(job_id, state, "test")
        fake.broker.add_event(job_id, JobState.SUCCEEDED, "site_report", exit_code=0)
        fake.broker.script.break_watch_after = 2
        events = list(client.watch(job_id))
    assert [e.sequence for e in events] == [1, 2, 3, 4]
    assert events[-1].state is JobState.SUCCEEDED and events[-1].exit_code == 0
    assert fake.broker.script.watch_after_sequences == [0, 2]


def test_watch_all_resumes_across_jobs(fake: RunningFake) -> None:
    with _client(fake) as client:
        for i in range(3):
            client.submit({**SPEC, "name": f"job-{i}"})
        fake.broker.script.break_watch_after = 0
        stream = client.watch_all()
        events = [next(stream) for _ in range(3)]
        stream.close()
    assert [(e.sequence, e.job_id) for e in events] == [(1, "j-1"), (2, "j-2"), (3, "j-3")]
    assert fake.broker.script.watch_after_sequences == [0, 2]


def test_list_follows_page_tokens(fake: RunningFake) -> None:
    with _client(fake) as client:
        submitted = [client.submit({**SPEC, "name": f"job-{i}"}).job.job_id for i in range(5)]
        listed = [j.job_id for j in client.list(page_size=2)]
        page = client.list_page(page_size=2)
    assert listed == submitted
    assert fake.broker.script.list_page_tokens == ["", "2", "4", ""]
    assert len(page.jobs) == 2 and page.next_page_token == "2"


def test_typed_errors_reach_the_caller(fake: RunningFake) -> None:
    with _client(fake) as client:
        with pytest.raises(LookupError) as lookup:
            client.get("j-404")
        assert isinstance(lookup.value, JobNotFoundError)
        assert lookup.value.status_code == "NOT_FOUND"
        with pytest.raises(SiteNotFoundError):
            client.drain("nowhere")
        with pytest.raises(InvalidArgumentError, match="unknown state"):
            client.list_page(state="sleeping")


def test_server_side_spec_violations_reach_the_caller(fake: RunningFake) -> None:
    from computenet.v1 import job_service_pb2 as job_pb

    with _client(fake) as client:
        # Bypass local validation to see the broker's own verdict.
        bad = job_pb.SubmitJobRequest(request_id="r-bad")
        with pytest.raises(SpecError) as err:
            client._unary("jobs.SubmitJob", bad)
    assert err.value.status_code == "INVALID_ARGUMENT"
    assert FieldViolation("spec.name", "String should have at least 1 character") in (
        err.value.violations
    )


def test_local_spec_errors_are_raised_before_any_call(fake: RunningFake) -> None:
    with _client(fake) as client, pytest.raises(SpecError) as err:
        client.submit({**SPEC, "duration_hours": -1})
    assert err.value.status_code is None
    assert [v.field for v in err.value.violations] == ["spec.duration_hours"]
    assert fake.broker.script.submit_request_ids == []


def test_other_calls_return_domain_objects(fake: RunningFake) -> None:
    with _client(fake, token="s3cret") as client:
        job = client.submit(SPEC).job
        assert client.get(job.job_id) == job
        assert client.explain(job.job_id) == PLACEMENT
        assert client.plan(SPEC) == PLACEMENT
        assert [s.site_id for s in client.sites()] == ["gansu-qingyang", "beijing-yizhuang"]
        assert client.site("gansu-qingyang").pools[0].free == 12
        assert client.drain("gansu-qingyang").status == "draining"
        assert client.drain("gansu-qingyang", drain=False).status == "active"
        assert client.cancel(job.job_id, "no longer needed").state is JobState.CANCELLED
    assert fake.broker.script.metadata[0]["authorization"] == "Bearer s3cret"


def test_close_is_idempotent_and_addresses_are_checked(fake: RunningFake) -> None:
    client = _client(fake)
    client.close()
    client.close()
    with pytest.raises(InvalidArgumentError, match="HOST:PORT"):
        Client(address="no-port")


def test_unreachable_broker_is_one_clear_error(dead_address: str) -> None:
    policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.01)
    client = Client(address=dead_address, timeout_s=2, retry=policy)
    with client, pytest.raises(UnavailableError) as err:
        client.get("j-1")
    assert str(err.value) == f"cannot reach broker at {dead_address} (UNAVAILABLE)"


def test_async_client_submits_lists_and_resumes(fake: RunningFake) -> None:
    fake.broker.script.submit_unavailable = 1

    async def scenario() -> None:
        async with AsyncClient(address=fake.address, timeout_s=5, retry=FAST_RETRY) as client:
            job = (await client.submit(SPEC)).job
            fake.broker.add_event(job.job_id, JobState.RUNNING, "test")
            fake.broker.add_event(job.job_id, JobState.FAILED, "site_report", exit_code=3)
            fake.broker.script.break_watch_after = 1
            events = [e async for e in client.watch(job.job_id)]
            assert [e.sequence for e in events] == [1, 2, 3]
            assert events[-1].exit_code == 3
            assert [j.job_id async for j in client.list(page_size=1)] == [job.job_id]
            with pytest.raises(JobNotFoundError):
                await client.get("j-404")
            assert len(await client.sites()) == 2
            await client.close()

    asyncio.run(scenario())
    assert len(set(fake.broker.script.submit_request_ids)) == 1
    assert len(fake.broker.script.submit_request_ids) == 2
    assert fake.broker.script.watch_after_sequences == [0, 1]
