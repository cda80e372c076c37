"""How a broker replica identifies itself to the others and keeps the leader lease."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.leadership.term import LeadershipTiming


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    """This replica's identity among the brokers sharing one database."""

    replica_id: str = ""
    """Stable replica id; empty: "single" on SQLite, a fresh one per process on PostgreSQL."""
    advertise: str = ""
    """HOST:PORT clients should use to reach this replica; empty: the bound gRPC address."""
    advertise_agents: str = ""
    """HOST:PORT agents should use; empty: the bound agent address (or the client one)."""
    timing: LeadershipTiming = field(default_factory=LeadershipTiming)
    """Leader lease length, renewal interval and step-down margin."""
