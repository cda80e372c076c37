"""The failed-authentication throttle per peer address, on a hand-driven clock."""

from __future__ import annotations

import json
import logging

import pytest

from broker.security import AUDIT_LOGGER
from broker.security.throttle import AuthThrottle, ThrottleSettings, peer_address


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


@pytest.mark.parametrize(
    ("peer", "address"),
    [
        ("ipv4:127.0.0.1:5555", "ipv4:127.0.0.1"),
        ("ipv6:[::1]:5555", "ipv6:[::1]"),
        ("unix:/run/broker.sock", "unix:/run/broker.sock"),
    ],
)
def test_the_port_is_not_part_of_the_peer(peer: str, address: str) -> None:
    assert peer_address(peer) == address


def test_a_peer_is_throttled_after_its_burst_and_recovers_at_the_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    clock = Clock()
    throttle = AuthThrottle(ThrottleSettings(failures_burst=3, failures_per_s=0.5), clock=clock)
    for _ in range(3):
        assert throttle.wait_s("a") == 0.0
        throttle.failed("a")
    assert throttle.wait_s("a") == pytest.approx(2.0)
    assert throttle.wait_s("b") == 0.0  # another address is not affected
    clock.now_s += 1.0
    assert throttle.wait_s("a") == pytest.approx(1.0)
    clock.now_s += 1.0
    assert throttle.wait_s("a") == 0.0  # one attempt again
    throttle.failed("a")
    assert throttle.wait_s("a") == pytest.approx(2.0)
    audited = [json.loads(r.getMessage()) for r in caplog.records if r.name == AUDIT_LOGGER]
    assert [(r["event"], r["peer"]) for r in audited] == [("auth_throttled", "a")] * 2
