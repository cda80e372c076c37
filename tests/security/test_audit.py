"""The audit log: one JSON line per mutating call, denials included, and never a token (F4, F6)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import grpc
import grpc.aio
import pytest

from broker.security import AUDIT_LOGGER, LimitSettings
from computenet.v1 import federation_service_pb2 as fed_pb
from computenet.v1 import federation_service_pb2_grpc as fed_grpc
from computenet.v1 import job_service_pb2 as job_pb
from computenet.v1 import job_service_pb2_grpc as job_grpc
from tests.security.conftest import ALICE, BOB, ROOT, Pki, serve


def audit_records(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]


async def attempt(call: Any) -> None:
    with contextlib.suppress(grpc.aio.AioRpcError):
        await call


@pytest.mark.parametrize("separate", [False, True], ids=["combined", "separate"])
def test_mutating_calls_are_audited_with_who_what_and_outcome(
    pki: Pki, caplog: pytest.LogCaptureFixture, separate: bool
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)

    async def main() -> None:
        async with serve(pki, limits=LimitSettings(submit_burst=1), separate=separate) as h:
            alice = job_grpc.JobServiceStub(h.client_channel(ALICE))
            await alice.SubmitJob(
                job_pb.SubmitJobRequest(request_id="req-1"),
                metadata=(("x-request-id", "trace-7"),),
                timeout=5,
            )
            await attempt(alice.SubmitJob(job_pb.SubmitJobRequest(request_id="req-2"), timeout=5))
            await alice.GetJob(job_pb.GetJobRequest(job_id="j-1"), timeout=5)
            await attempt(
                fed_grpc.FederationServiceStub(h.client_channel(ALICE)).DrainSite(
                    fed_pb.DrainSiteRequest(site_id="site-a"), timeout=5
                )
            )
            await fed_grpc.FederationServiceStub(h.client_channel(ROOT)).DrainSite(
                fed_pb.DrainSiteRequest(site_id="site-b"), timeout=5
            )
            await attempt(
                job_grpc.JobServiceStub(h.client_channel("cnt_wrong")).CancelJob(
                    job_pb.CancelJobRequest(job_id="j-9"), timeout=5
                )
            )

    asyncio.run(main())
    records = audit_records(caplog)
    summary = [
        (r["method"], r["code"], r["principal"], r["tenant"], r.get("job_id"), r.get("site_id"))
        for r in records
    ]
    assert summary == [
        ("JobService/SubmitJob", "OK", "alice", "acme", "j-1", None),
        ("JobService/SubmitJob", "RESOURCE_EXHAUSTED", "alice", "acme", None, None),
        ("FederationService/DrainSite", "PERMISSION_DENIED", "alice", "acme", None, "site-a"),
        ("FederationService/DrainSite", "OK", "root", "ops", None, "site-b"),
        # the combined pipeline parses no byte of a call before it is authenticated
        ("JobService/CancelJob", "UNAUTHENTICATED", None, None, "j-9" if separate else None, None),
    ]
    assert [r["request_id"] for r in records[:2]] == ["trace-7", "req-2"]
    assert records[3]["role"] == "operator"
    assert all(r["peer"].startswith("ipv4:127.0.0.1:") for r in records)
    assert all(r["ts"] and r["duration_ms"] >= 0 for r in records)


def test_no_token_appears_in_any_log(pki: Pki, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "cnt_not-a-valid-token-but-still-a-secret-000000000"

    async def main() -> None:
        async with serve(pki) as h:
            for token in (ALICE, BOB, ROOT, wrong):
                stub = job_grpc.JobServiceStub(h.client_channel(token))
                await attempt(stub.SubmitJob(job_pb.SubmitJobRequest(request_id="r"), timeout=5))
                await attempt(stub.CancelJob(job_pb.CancelJobRequest(job_id="j-1"), timeout=5))
                await attempt(
                    fed_grpc.FederationServiceStub(h.client_channel(token)).DrainSite(
                        fed_pb.DrainSiteRequest(site_id="site-a"), timeout=5
                    )
                )

    asyncio.run(main())
    assert len(audit_records(caplog)) == 12
    text = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    for token in (ALICE, BOB, ROOT, wrong):
        assert token not in text
        assert token[4:20] not in text
