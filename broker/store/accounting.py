"""What the store keeps for usage accounting: attempt runs and priced usage increments.

An attempt's run is opened by the transition that sees it running and closed by the one that
ends it, in their own transactions, so its window is exactly its events' times. Pricing is
done outside the store (broker.accounting) and written back as increments: each one covers
[from, to) of one run and applies only if the run is still accounted up to `from`, so an
increment is never counted twice, whatever restarts, retries or failovers happen.
"""

from __future__ import annotations

from dataclasses import dataclass

from computenet.types import JobId, SiteId, TenantId

RUNNING_STATES = frozenset({"running", "migrating"})
"""States in which an attempt runs (a migrating job's attempt runs until it stops)."""


@dataclass(frozen=True, slots=True)
class AttemptRun:
    """One attempt's run: who, where, on which cards, when, and how far it is priced.

    `pools` are (model, cards) from the attempt's holds when it started running ("" is the
    host-only pool); `ended_unix_ms` is 0 while it runs.
    """

    job_id: JobId
    attempt: int
    tenant: TenantId
    site: SiteId
    pools: tuple[tuple[str, int], ...]
    cpu_cores: float
    started_unix_ms: int
    ended_unix_ms: int = 0
    accounted_until_unix_ms: int = 0

    @property
    def running(self) -> bool:
        """True until the attempt ends."""
        return self.ended_unix_ms == 0

    @property
    def settled(self) -> bool:
        """True once it ended and is priced up to its end."""
        return not self.running and self.accounted_until_unix_ms >= self.ended_unix_ms


@dataclass(frozen=True, slots=True)
class UsageLine:
    """Priced usage of one run's cards of one model within one CST day."""

    model: str
    day: str
    cards: int
    card_hours: float
    kwh: float
    carbon_kg: float
    card_cny: float
    energy_cny: float


@dataclass(frozen=True, slots=True)
class UsageIncrement:
    """The priced usage of a run over [from_unix_ms, to_unix_ms)."""

    job_id: JobId
    attempt: int
    tenant: TenantId
    site: SiteId
    from_unix_ms: int
    to_unix_ms: int
    lines: tuple[UsageLine, ...]
