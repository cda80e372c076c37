"""Fixtures of the SDK tests: a scripted broker stand-in and a port nobody listens on."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from computenet.client import RetryPolicy
from tests.sdk.fake_broker import RunningFake, start_fake_broker

FAST_RETRY = RetryPolicy(max_attempts=4, initial_backoff_s=0.01, max_backoff_s=0.05)


@pytest.fixture
def fake() -> Iterator[RunningFake]:
    running = start_fake_broker()
    try:
        yield running
    finally:
        running.server.stop(grace=None)


@pytest.fixture
def dead_address() -> str:
    """An address on loopback that refuses connections (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"
