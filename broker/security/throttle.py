"""Throttling of failed authentication per peer address: a caller that keeps presenting bad
credentials is refused quickly, without its credentials being checked, until it slows down."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from broker.security.audit import AUDIT_LOGGER
from broker.security.limits import TokenBucket

log = logging.getLogger(__name__)
audit_log = logging.getLogger(AUDIT_LOGGER)

MAX_TRACKED_PEERS = 10_000
"""Peers remembered at once; beyond it, peers whose allowance is whole again are forgotten."""


def peer_address(peer: str) -> str:
    """The address of a gRPC peer string without its port: `ipv4:127.0.0.1` for
    `ipv4:127.0.0.1:5555`, `ipv6:[::1]` for `ipv6:[::1]:5555`; other forms as they are."""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6") and ":" in rest:
        return f"{kind}:{rest.rsplit(':', 1)[0]}"
    return peer


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    """How many failed authentications a peer address may make."""

    failures_burst: int = 20
    """Failed authentications a peer may make in a row before it is throttled."""
    failures_per_s: float = 0.5
    """Failed authentications per second a peer may go on making once throttled."""


class AuthThrottle:
    """A token bucket of failures per peer address; a peer with none left is refused."""

    def __init__(
        self,
        settings: ThrottleSettings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings or ThrottleSettings()
        TokenBucket(self.settings.failures_per_s, self.settings.failures_burst)  # validates
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self._throttled: set[str] = set()

    def wait_s(self, peer: str) -> float:
        """0.0 if `peer` may try to authenticate now, else the seconds until it may."""
        bucket = self._buckets.get(peer)
        if bucket is None:
            return 0.0
        wait_s = bucket.wait_s(self._clock())
        if wait_s <= 0:
            self._throttled.discard(peer)
        return wait_s

    def failed(self, peer: str) -> None:
        """Record a failed authentication of `peer`; audited when it becomes throttled."""
        now_s = self._clock()
        bucket = self._buckets.get(peer)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_PEERS:
                self._forget_idle(now_s)
            s = self.settings
            bucket = self._buckets[peer] = TokenBucket(s.failures_per_s, s.failures_burst)
        bucket.take(now_s)
        wait_s = bucket.wait_s(now_s)
        if wait_s > 0 and peer not in self._throttled:
            self._throttled.add(peer)
            log.warning("peer throttled peer=%s retry_after_s=%.1f", peer, wait_s)
            record = {"event": "auth_throttled", "peer": peer, "retry_after_s": round(wait_s, 3)}
            audit_log.warning("%s", json.dumps(record, sort_keys=True))

    def _forget_idle(self, now_s: float) -> None:
        for peer, bucket in list(self._buckets.items()):
            if bucket.wait_s(now_s) <= 0 and bucket.full(now_s):
                del self._buckets[peer]
                self._throttled.discard(peer)
        if len(self._buckets) >= MAX_TRACKED_PEERS:  # a flood of fresh addresses: start over
            self._buckets.clear()
            self._throttled.clear()
