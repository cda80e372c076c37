"""Leadership terms and their timing: when a leader may act, and when it must stop.

A term is the time one replica holds the leader lease under one epoch. The lease row in the
database expires `lease_s` after the renewal that wrote it (by the writer's clock); the holder
counts its own validity from the moment it *sent* that renewal, on its monotonic clock, and
stops acting `step_down_margin_s` earlier. So the holder stops before any other replica can
take the lease, whatever the renewal's delay, as long as the replicas' clocks differ by less
than the margin.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LeadershipTiming:
    """How long the leader lease lasts and how it is kept."""

    lease_s: float = 5.0
    """Lease length written at each renewal; a dead leader is replaced after at most this."""
    renew_every_s: float = 1.0
    """How often the leader renews and followers try to take the lease."""
    step_down_margin_s: float = 1.5
    """The leader stops acting this long before its lease could end; covers clock skew."""

    def __post_init__(self) -> None:
        if self.renew_every_s <= 0 or self.lease_s <= 0 or self.step_down_margin_s < 0:
            raise ValueError("leadership timings must be positive")
        if self.lease_s - self.step_down_margin_s < 2 * self.renew_every_s:
            raise ValueError(
                f"leader lease_s ({self.lease_s:g}) minus step_down_margin_s "
                f"({self.step_down_margin_s:g}) must leave room for two renewals "
                f"(renew_every_s {self.renew_every_s:g})"
            )

    def valid_until(self, renewal_sent_s: float) -> float:
        """Monotonic time until which a renewal sent at `renewal_sent_s` lets the holder act."""
        return renewal_sent_s + self.lease_s - self.step_down_margin_s


@dataclass(frozen=True, slots=True)
class Term:
    """One replica's current leadership: its epoch, since when, and until when it may act."""

    epoch: int
    since_unix_ms: int
    valid_until_s: float
    """Monotonic deadline; past it the holder acts no more, renewed or not."""

    def valid(self, now_s: float) -> bool:
        """True while the holder may place, dispatch, judge liveness and renew agent leases."""
        return now_s < self.valid_until_s


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one renewal attempt means for this replica."""

    term: Term | None
    """The term to hold after this attempt (None: follow)."""
    elected: bool = False
    """A new term starts: build the leader's state from the database."""
    deposed: str = ""
    """Why a term ended ("" if none did)."""


def judge(
    current: Term | None,
    acquired_epoch: int | None,
    *,
    sent_s: float,
    now_s: float,
    now_unix_ms: int,
    timing: LeadershipTiming,
) -> Verdict:
    """The outcome of a lease attempt sent at `sent_s` that returned `acquired_epoch`
    (None: refused or failed) at `now_s`.

    A result that arrives after the validity it would grant has already run out counts as a
    failure: the renewal was too slow to trust.
    """
    valid_until = timing.valid_until(sent_s)
    if acquired_epoch is None or now_s >= valid_until:
        if current is None:
            return Verdict(None)
        if current.valid(now_s):
            return Verdict(current)  # keep acting until the last good renewal runs out
        return Verdict(None, deposed="lease not renewed in time")
    if current is not None and current.epoch == acquired_epoch and current.valid(now_s):
        return Verdict(Term(current.epoch, current.since_unix_ms, valid_until))
    deposed = ""
    if current is not None:
        deposed = "lease lapsed before renewal" if not current.valid(now_s) else "epoch changed"
    return Verdict(Term(acquired_epoch, now_unix_ms, valid_until), elected=True, deposed=deposed)


def expired(current: Term | None, now_s: float) -> Verdict | None:
    """A verdict if `current` has run out with no renewal since (None: nothing to do)."""
    if current is not None and not current.valid(now_s):
        return Verdict(None, deposed="lease not renewed in time")
    return None
