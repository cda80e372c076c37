"""What a broker replica is configured with: one settings object, read once at the entry point."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from broker.control import RetryPolicy
from broker.leadership.settings import ClusterSettings
from broker.placement import PolicyConfig
from broker.rebalance.service import RebalanceSettings
from broker.security.limits import ServerLimits
from broker.security.setup import SecuritySettings
from broker.tenancy import TenantsTable
from computenet.address import Address


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Everything the broker process is configured with, read once at the entry point."""

    listen: Address
    """Where to serve gRPC; port 0 picks a free port."""
    db_url: str = "sqlite:///computenet-broker.db"
    """SQLAlchemy URL of the store."""
    topology_path: Path | None = None
    """Topology YAML; None for the built-in national network."""
    metrics_listen: Address | None = None
    """Where to serve Prometheus metrics; None disables them."""
    http_listen: Address | None = None
    """Where to serve the web console (over TLS when TLS is on); None disables it."""
    suspect_after_s: float = 15.0
    """Seconds without a heartbeat before a site is suspect."""
    lost_after_s: float = 60.0
    """Seconds without a heartbeat before a site is lost; at least lease + skew margin."""
    heartbeat_interval_s: float = 2.0
    """How often agents are asked to send a heartbeat."""
    lease_s: float = 40.0
    """Agent lease, from the send time of the last heartbeat the broker answered."""
    clock_skew_margin_s: float = 5.0
    """Allowance between an agent's lease end and the broker's lost verdict."""
    stale_capacity_after_s: float = 60.0
    """Seconds of failing capacity probes before an alive site takes no new work."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """Placement weights and prices."""
    placement_round_budget_s: float = 0.5
    """Time budget in seconds of one joint placement round over the pending queue; the live
    placement loop keeps the best assignment found within it."""
    usage_every_s: float = 60.0
    """How often the leader prices running attempts' usage and records it (an attempt that
    ends is priced soon after its end whatever this is)."""
    security: SecuritySettings = field(default_factory=lambda: SecuritySettings(insecure=True))
    """TLS, tokens and limits; insecure (loopback only) unless configured."""
    rebalance: RebalanceSettings = field(default_factory=RebalanceSettings)
    """Scheduled rebalancing runs, this replica's lease holder name."""
    transport: ServerLimits = field(default_factory=ServerLimits)
    """Message size, keepalive and connection limits of the gRPC server."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    """Caps and backoff for jobs whose attempts fail to start."""
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    """This replica's id, advertised addresses and leader lease timing."""
    tenants: TenantsTable = field(default_factory=TenantsTable)
    """Tenants' quotas, borrowing limits and weights, fair share and preemption, as started."""
    config_path: Path | None = None
    """The config file the broker started from: its tenants are re-read when it changes."""
