"""Hypothesis over the raw wire: arbitrary bytes and arbitrary field values sent to every client
method of a real broker find no INTERNAL, no crash and no answer over the message limit."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile.harness import RunningBroker, running_broker
from tests.hostile.wire import CLIENT_METHODS, Method, messages

MAX_MESSAGE_BYTES = 4 * 1024 * 1024
FORBIDDEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
STREAM_WAIT_S = 0.2


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


@pytest.fixture(scope="module")
def channel(broker: RunningBroker) -> Iterator[grpc.Channel]:
    with broker.channel() as ch:
        yield ch


def send(channel: grpc.Channel, method: Method, payload: bytes, token: str) -> grpc.StatusCode:
    """Send raw bytes; fail on a forbidden status or an answer over the message limit."""
    metadata = RunningBroker.auth(token)
    try:
        if method.server_streaming:
            stream = channel.unary_stream(method.path)(
                payload, timeout=STREAM_WAIT_S, metadata=metadata
            )
            for answer in stream:
                assert len(answer) <= MAX_MESSAGE_BYTES
        else:
            answer = channel.unary_unary(method.path)(payload, timeout=10, metadata=metadata)
            assert len(answer) <= MAX_MESSAGE_BYTES
    except grpc.RpcError as err:
        code: grpc.StatusCode = err.code()  # type: ignore[attr-defined]
        assert code not in FORBIDDEN, f"{method}: {code.name} {err.details()}"  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


REFUSED_BEFORE_THE_HANDLER = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def _examples(method: Method) -> int:
    return 15 if method.server_streaming else 100


@pytest.mark.parametrize("method", CLIENT_METHODS, ids=str)
def test_arbitrary_bytes_are_refused_cleanly(
    channel: grpc.Channel, broker: RunningBroker, method: Method
) -> None:
    @settings(
        max_examples=_examples(method),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(payload=st.binary(max_size=256), operator=st.booleans())
    def check(payload: bytes, operator: bool) -> None:
        send(channel, method, payload, broker.operator if operator else broker.user)

    check()


@pytest.mark.parametrize("method", CLIENT_METHODS, ids=str)
def test_arbitrary_field_values_are_answered_or_refused_cleanly(
    channel: grpc.Channel, broker: RunningBroker, method: Method
) -> None:
    codes: set[grpc.StatusCode] = set()

    @settings(
        max_examples=_examples(method),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(message=messages(method.request), operator=st.booleans())
    def check(message: object, operator: bool) -> None:
        payload = message.SerializeToString()  # type: ignore[attr-defined]
        codes.add(send(channel, method, payload, broker.operator if operator else broker.user))

    check()
    # the examples reached the handler, not only the security layers in front of it
    assert codes - REFUSED_BEFORE_THE_HANDLER, codes


def test_the_broker_still_serves_after_the_fuzzing(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    answer = health.Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_garbage_sent_unauthenticated_is_refused_before_it_is_read(
    channel: grpc.Channel,
) -> None:
    # undecodable bytes without a token: UNAUTHENTICATED, not INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/computenet.v1.JobService/SubmitJob")(b"\xff\xff\xff", timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]


def test_garbage_sent_authenticated_is_invalid_argument(
    channel: grpc.Channel, broker: RunningBroker
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary("/computenet.v1.JobService/SubmitJob")(
            b"\xff\xff\xff", timeout=5, metadata=broker.auth(broker.user)
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
