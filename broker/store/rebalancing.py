"""The rebalancing's persistent state: run records, claimed schedule fires and named leases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from computenet.rebalance_types import RebalanceRunInfo


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A lease as stored: who holds it, under which fencing token, and until when."""

    name: str
    holder: str
    fencing_token: int
    expires_unix_ms: int
    acquired_unix_ms: int = 0
    """When the current term (this fencing token) began; 0 if taken before it was recorded."""


class Lease(Protocol):
    """A named lease that one holder at a time owns until it expires, with a fencing token.

    Invariants: the token only grows; it grows exactly when the lease changes hands or is
    retaken after expiring, so at most one holder ever gets a given token, and a holder that
    renews in time keeps its token. Expiry uses the replicas' clocks: keep the TTL well above
    their skew. A write guarded by the lease passes `Fence(name, token)` to `Store.apply`,
    which checks the token in the write's own transaction, so a replica that stalled past its
    lease writes nothing once another has taken over.
    """

    @property
    def name(self) -> str:
        """The lease's name (one row per name)."""
        ...

    def try_acquire(self, holder: str, ttl_s: float) -> int | None:
        """Take the lease, or renew it if `holder` has it, for `ttl_s` seconds from now.

        Returns the fencing token, or None while another holder's lease is live.
        """
        ...

    def check(self, token: int) -> bool:
        """True if `token` is the lease's token and the lease has not expired.

        A read on its own: a fenced write checks again inside its own transaction.
        """
        ...

    def seize(self, holder: str, ttl_s: float) -> int:
        """Take the lease whoever holds it, with a new token (the old holder's fenced writes
        are refused from now on). For a holder whose right comes from elsewhere: the broker
        leader, whose rebalancing must not wait out a dead predecessor's lease."""
        ...

    def release(self, holder: str, token: int) -> bool:
        """Give the lease up early (on shutdown); the next taker gets a new token.

        False if `holder` no longer has it under `token`.
        """
        ...

    def current(self) -> LeaseState | None:
        """The stored lease, if it was ever taken."""
        ...


class RunRecords(Protocol):
    """Records of rebalancing runs, paged newest first, and the claims of scheduled fires."""

    def save_run(self, run: RebalanceRunInfo) -> None:
        """Insert the run, or replace the stored run with the same id (e.g. realised savings)."""
        ...

    def list_runs(self, limit: int = 20, before: str | None = None) -> list[RebalanceRunInfo]:
        """Up to `limit` runs newest first (by start time, then run id).

        With `before` (a run id), only runs older than that run; none if it is unknown.
        """
        ...

    def claim_fire(self, fire: str, holder: str, now_unix_ms: int) -> bool:
        """Claim one scheduled fire (`label@time`) for `holder`; False if claimed before.

        The claim is atomic across replicas sharing the database, so each fire of a schedule
        runs at most once whatever the replicas' clocks and leases do.
        """
        ...


class RebalanceStore(Protocol):
    """What the rebalancing keeps in the broker's database: its lease and its run records."""

    @property
    def lease(self) -> Lease:
        """The lease that decides which replica runs rebalancing."""
        ...

    @property
    def runs(self) -> RunRecords:
        """The run records and fire claims."""
        ...

    def close(self) -> None:
        """Release connections; idempotent."""
        ...
