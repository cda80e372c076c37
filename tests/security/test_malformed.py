"""Malformed calls are authenticated and audited before a byte of them is decoded."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import grpc.aio
import pytest

from broker.security import AUDIT_LOGGER
from tests.security.conftest import ALICE, Pki, serve

GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"  # a length-delimited field running past the end
SUBMIT = "/computenet.v1.JobService/SubmitJob"
WATCH = "/computenet.v1.JobService/WatchJob"


def test_undecodable_bytes_meet_authentication_first_then_invalid_argument(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    # the broker's combined pipeline; the three interceptors used apart decode first, as gRPC
    # does, and need broker.rpc.decoding installed outermost
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)

    async def main() -> None:
        async with serve(pki) as h:
            codes = []
            for token in (None, "cnt_wrong", ALICE):
                channel = h.client_channel(token)
                for method, call in (
                    (SUBMIT, channel.unary_unary(SUBMIT)),
                    (WATCH, channel.unary_stream(WATCH)),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as info:
                        answer = call(GARBAGE, timeout=5)
                        if method == WATCH:
                            async for _ in answer:  # type: ignore[attr-defined]
                                pass
                        else:
                            await answer
                    codes.append(info.value.code())
            assert (
                codes
                == [grpc.StatusCode.UNAUTHENTICATED] * 4 + [grpc.StatusCode.INVALID_ARGUMENT] * 2
            )
            assert h.calls["SubmitJob"] == 0 and h.calls["WatchJob"] == 0

    asyncio.run(main())
    audited = [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]
    assert [(r["method"], r["code"], r["principal"]) for r in audited] == [
        ("JobService/SubmitJob", "UNAUTHENTICATED", None),
        ("JobService/SubmitJob", "UNAUTHENTICATED", None),
        ("JobService/SubmitJob", "INVALID_ARGUMENT", "alice"),
    ]
