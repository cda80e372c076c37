"""The broker's RPC-edge translator, on a real grpc.aio server, as the SDK sees it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import grpc.aio
import pytest

from broker.rpc.errors import ErrorTranslationInterceptor, translate_errors
from computenet.client import AsyncClient, RetryPolicy
from computenet.errors import (
    FieldViolation,
    InternalError,
    JobNotFoundError,
    NotPlacedError,
    PermissionDeniedError,
    ResourceExhaustedError,
    SpecError,
)
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from computenet.v1 import types_pb2 as pb

SECRET = "password=hunter2 at /srv/db.sqlite"


class Plain(job_grpc.JobServiceServicer):  # type: ignore[misc]
    """Handlers that fail in every way a broker handler can; undecorated."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    async def GetJob(self, request: job_pb.GetJobRequest, context: Any) -> Any:
        if request.job_id == "boom":
            raise RuntimeError(SECRET)
        if request.job_id == "denied":
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "handler aborted itself")
        raise JobNotFoundError(f"job {request.job_id} not found")

    async def SubmitJob(self, request: job_pb.SubmitJobRequest, context: Any) -> Any:
        raise SpecError("invalid job spec", [FieldViolation("spec.name", "must not be empty")])

    async def ExplainPlacement(self, request: Any, context: Any) -> Any:
        raise NotPlacedError("job j-1 is pending")

    async def WatchJob(self, request: job_pb.WatchJobRequest, context: Any) -> AsyncIterator[Any]:
        # The client may cancel while the second event is still being sent, or while the
        # handler stalls: either way the handler sees the cancellation.
        try:
            for sequence in (1, 2):
                yield job_pb.WatchJobResponse(
                    event=pb.JobEvent(sequence=sequence, job_id="j-1", state=pb.JOB_STATE_PENDING)
                )
            if request.job_id == "slow":
                await asyncio.Event().wait()  # stalls until the client cancels
        except (asyncio.CancelledError, GeneratorExit):  # cancelled while waiting or sending
            self.cancelled.set()
            raise
        raise ResourceExhaustedError("too many watchers", 1.5)


class Decorated(Plain):
    """The same handlers, each under @translate_errors as the broker servicers use it."""

    GetJob = translate_errors(Plain.GetJob)
    SubmitJob = translate_errors(Plain.SubmitJob)
    ExplainPlacement = translate_errors(Plain.ExplainPlacement)
    WatchJob = translate_errors(Plain.WatchJob)


Scenario = Callable[[AsyncClient, Plain], Awaitable[None]]


async def _serve(servicer: Plain, interceptors: list[Any], scenario: Scenario) -> None:
    server = grpc.aio.server(interceptors=interceptors)
    job_grpc.add_JobServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    retry = RetryPolicy(max_attempts=1)
    try:
        async with AsyncClient(address=f"127.0.0.1:{port}", timeout_s=5, retry=retry) as client:
            await scenario(client, servicer)
    finally:
        await server.stop(None)


@pytest.fixture(params=["decorator", "interceptor"])
def run(request: pytest.FixtureRequest) -> Callable[[Scenario], None]:
    def runner(scenario: Scenario) -> None:
        if request.param == "decorator":
            asyncio.run(_serve(Decorated(), [], scenario))  # type: ignore[abstract]
        else:
            interceptors = [ErrorTranslationInterceptor()]
            asyncio.run(_serve(Plain(), interceptors, scenario))  # type: ignore[abstract]

    return runner


def test_typed_errors_reach_the_client_typed(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: AsyncClient, _: Plain) -> None:
        with pytest.raises(JobNotFoundError, match="job j-9 not found") as not_found:
            await client.get("j-9")
        assert not_found.value.status_code == "NOT_FOUND"
        with pytest.raises(NotPlacedError) as not_placed:
            await client.explain("j-1")
        assert not_placed.value.status_code == "FAILED_PRECONDITION"
        with pytest.raises(SpecError) as bad:
            await client.submit({"name": "x", "kind": "batch", "duration_hours": 1,
                                 "command": ["true"]})  # fmt: skip
        assert bad.value.violations == [FieldViolation("spec.name", "must not be empty")]

    run(scenario)


def test_streams_deliver_then_fail_typed(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: AsyncClient, _: Plain) -> None:
        seen = []
        with pytest.raises(ResourceExhaustedError) as exhausted:
            async for event in client.watch("j-1"):
                seen.append(event.sequence)
        assert seen == [1, 2]
        assert exhausted.value.retry_after_s == pytest.approx(1.5)

    run(scenario)


def test_unexpected_errors_become_sanitised_internal(
    run: Callable[[Scenario], None], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: AsyncClient, _: Plain) -> None:
        with pytest.raises(InternalError) as internal:
            await client.get("boom")
        message = str(internal.value)
        assert internal.value.status_code == "INTERNAL"
        assert message.startswith("internal error; see broker log, request_id=")
        assert "hunter2" not in message and "RuntimeError" not in message
        request_id = message.rsplit("=", 1)[1]
        logged = [r for r in caplog.records if request_id in r.getMessage()]
        assert logged and logged[0].exc_info and SECRET in str(logged[0].exc_info[1])

    with caplog.at_level(logging.INFO, logger="broker.rpc.errors"):
        run(scenario)


def test_aborts_by_the_handler_pass_through(run: Callable[[Scenario], None]) -> None:
    async def scenario(client: AsyncClient, _: Plain) -> None:
        with pytest.raises(PermissionDeniedError, match="handler aborted itself"):
            await client.get("denied")

    run(scenario)


def test_client_cancellation_is_not_translated(
    run: Callable[[Scenario], None], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: AsyncClient, servicer: Plain) -> None:
        events = client.watch("slow")
        assert (await anext(events)).sequence == 1
        await events.aclose()  # cancels the call while the handler waits
        await asyncio.wait_for(servicer.cancelled.wait(), timeout=5)

    with caplog.at_level(logging.INFO, logger="broker.rpc.errors"):
        run(scenario)
    assert not [r for r in caplog.records if r.name == "broker.rpc.errors"]


def test_sync_methods_are_refused_by_the_decorator() -> None:
    def handler(self: object, request: object, context: object) -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        translate_errors(handler)
