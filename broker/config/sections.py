"""Sections of the broker config file for the process around the policies: addresses, store,
topology, liveness, limits, transport and security."""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from broker.config.fields import STRICT, AddressText, ExistingDir, ExistingFile

WEEK_S = 7 * 24 * 3600
"""Longest transport duration; gRPC takes them in milliseconds as 32-bit integers."""
MAX_GRPC_BYTES = 2**31 - 1
"""gRPC message sizes are 32-bit integers."""
LEASE_HEARTBEATS = 3
"""A lease spans at least this many heartbeat intervals, so one lost renewal does not end it."""


class ListenConfig(BaseModel):
    """Where the broker listens."""

    model_config = STRICT

    grpc: AddressText = Field(
        "127.0.0.1:50051",
        description=(
            "HOST:PORT of the gRPC API for clients (and for agents in insecure mode); "
            "port 0 picks a free port."
        ),
    )
    agents: AddressText | None = Field(
        None,
        description=(
            "HOST:PORT of the agents' mTLS port (TLS mode); null: the gRPC host on a free port."
        ),
    )
    metrics: AddressText | None = Field(
        None, description="HOST:PORT of the Prometheus endpoint; null: no metrics endpoint."
    )
    http: AddressText | None = Field(
        None,
        description=(
            "HOST:PORT of the web console (HTTPS with the broker's certificate when TLS is on; "
            "loopback only without TLS); port 0 picks a free port; null: no console."
        ),
    )


class StoreConfig(BaseModel):
    """The database holding jobs, events, the capacity ledger, leases and rebalancing runs."""

    model_config = STRICT

    url: str = Field(
        "sqlite:///computenet-broker.db",
        pattern=r"^(sqlite|postgresql)(\+\w+)?://",
        description=(
            "SQLAlchemy URL: sqlite:///FILE (relative to the working directory) or "
            "postgresql+psycopg://USER:PASSWORD@HOST/DB."
        ),
    )


class TopologyConfig(BaseModel):
    """The federation's sites, user regions and links."""

    model_config = STRICT

    path: ExistingFile | None = Field(
        None,
        description=(
            "Topology YAML file, relative to this config file; null: the built-in national network."
        ),
    )


class LivenessConfig(BaseModel):
    """How the broker judges sites by their heartbeats, and the lease it gives agents.

    The lease runs at the agent from its own send time of the last heartbeat the broker
    answered, so it ends before `last heard + lease_s` at the broker; the broker declares a site
    lost only after `lost_after_s >= lease_s + clock_skew_margin_s` of silence, by which time the
    agent has stopped the site's attempts.
    """

    model_config = STRICT

    suspect_after_s: float = Field(
        15.0,
        gt=0,
        description="Seconds without a heartbeat before a site is suspect (no new work).",
    )
    lease_s: float = Field(
        40.0,
        gt=0,
        description=(
            "Agent lease: an agent stops its requeueable attempts this long after sending the "
            "last heartbeat the broker answered."
        ),
    )
    clock_skew_margin_s: float = Field(
        5.0,
        ge=0,
        description=(
            "Allowance for clock-rate drift and scheduling delay between an agent's lease end "
            "and the broker's lost verdict."
        ),
    )
    lost_after_s: float = Field(
        60.0,
        gt=0,
        validate_default=True,  # a file raising only suspect_after_s must still be checked
        description=(
            "Seconds without a heartbeat before a site is lost and its jobs are requeued or "
            "failed; must exceed suspect_after_s and be at least lease_s + clock_skew_margin_s."
        ),
    )
    heartbeat_interval_s: float = Field(
        2.0,
        gt=0,
        validate_default=True,  # checked against lease_s even when left at its default
        description=(
            "How often agents are asked to send a heartbeat; at most a third of suspect_after_s "
            "is used, and lease_s must span at least three of these intervals."
        ),
    )
    stale_capacity_after_s: float = Field(
        60.0,
        gt=0,
        description=(
            "Seconds an alive site's capacity probe may fail (its last good capacity kept, "
            "marked stale) before the site takes no new work; it is never lost for this."
        ),
    )

    @field_validator("lost_after_s")
    @classmethod
    def _lost_after_suspect_and_lease(cls, lost_after_s: float, info: ValidationInfo) -> float:
        suspect_after_s = info.data.get("suspect_after_s")
        if suspect_after_s is not None and lost_after_s <= suspect_after_s:
            raise ValueError(
                f"must be greater than suspect_after_s ({suspect_after_s:g}), got {lost_after_s:g}"
            )
        lease_s, skew_s = info.data.get("lease_s"), info.data.get("clock_skew_margin_s")
        if lease_s is not None and skew_s is not None and lost_after_s < lease_s + skew_s:
            raise ValueError(
                f"must be at least lease_s ({lease_s:g}) + clock_skew_margin_s ({skew_s:g}) = "
                f"{lease_s + skew_s:g}, got {lost_after_s:g}: a lost site's jobs could be "
                "requeued while its agent still runs them"
            )
        return lost_after_s

    @field_validator("heartbeat_interval_s")
    @classmethod
    def _renewals_within_lease(cls, heartbeat_interval_s: float, info: ValidationInfo) -> float:
        lease_s, suspect_after_s = info.data.get("lease_s"), info.data.get("suspect_after_s")
        if lease_s is None or suspect_after_s is None:
            return heartbeat_interval_s
        used = min(heartbeat_interval_s, suspect_after_s / 3)
        if lease_s < LEASE_HEARTBEATS * used:
            raise ValueError(
                f"agents would beat every {used:g} s, so lease_s ({lease_s:g}) must be at least "
                f"{LEASE_HEARTBEATS} heartbeat intervals ({LEASE_HEARTBEATS * used:g}): a lease "
                "shorter than a few beats ends between renewals"
            )
        return heartbeat_interval_s


class LimitsConfig(BaseModel):
    """Abuse limits: submission and read rates per tenant, failed authentications per peer,
    streams per site, deadline of unary calls."""

    model_config = STRICT

    submit_rate_per_s: float = Field(
        200.0, ge=0, description="Sustained job submissions per second per tenant; 0: unlimited."
    )
    submit_burst: int | None = Field(
        None,
        ge=1,
        description=(
            "Submissions a tenant may make at once after being quiet; null: twice the rate, "
            "at least 20."
        ),
    )
    read_rate_per_s: float = Field(
        50.0,
        ge=0,
        description=(
            "Sustained reads (get, list, explain, plan, watch started) per second per tenant, "
            "counted apart from submissions; 0: unlimited."
        ),
    )
    read_burst: int | None = Field(
        None,
        ge=1,
        description="Reads a tenant may make at once after being quiet; null: twice the rate, "
        "at least 50.",
    )
    auth_failures_burst: int = Field(
        20,
        ge=1,
        description=(
            "Failed authentications a peer address may make in a row; past them its calls are "
            "refused (RESOURCE_EXHAUSTED) without checking credentials until it slows down."
        ),
    )
    auth_failures_per_s: float = Field(
        0.5,
        gt=0,
        description="Failed authentications per second a throttled peer address may go on making.",
    )
    max_streams_per_site: int = Field(
        2,
        ge=1,
        description="Concurrent Connect streams per site (a reconnect may briefly overlap).",
    )
    stream_retry_after_s: float = Field(
        5.0, gt=0, description="Retry hint given to an agent refused for too many streams."
    )
    handler_timeout_s: float | None = Field(
        30.0, gt=0, description="Server-side deadline of unary calls in seconds; null: none."
    )

    def burst(self) -> int:
        """The submission burst in effect (configured, or derived from the rate)."""
        if self.submit_burst is not None:
            return self.submit_burst
        return max(20, int(self.submit_rate_per_s * 2))

    def reads_burst(self) -> int:
        """The read burst in effect (configured, or derived from the rate)."""
        if self.read_burst is not None:
            return self.read_burst
        return max(50, int(self.read_rate_per_s * 2))


class TransportConfig(BaseModel):
    """Transport limits of the broker's gRPC server: message size, keepalive, connections."""

    model_config = STRICT

    max_message_bytes: int = Field(
        4 * 1024 * 1024,
        ge=64 * 1024,
        le=MAX_GRPC_BYTES,
        description=(
            "Largest message the broker receives or sends, in bytes; a larger request fails "
            "with RESOURCE_EXHAUSTED. Must hold the topology file. SDK clients accept replies of "
            "at most 4 MiB whatever this says."
        ),
    )
    keepalive_time_s: float = Field(
        20.0, ge=1, le=WEEK_S, description="The broker pings a connection idle this long."
    )
    keepalive_timeout_s: float = Field(
        10.0, ge=1, le=WEEK_S, description="A ping unanswered this long closes the connection."
    )
    min_client_ping_interval_s: float = Field(
        10.0,
        ge=0,
        le=WEEK_S,
        description=(
            "Peers pinging more often than this with no call in flight get a strike; keep it "
            "below the agents' keepalive (30 s), or they are cut off."
        ),
    )
    max_ping_strikes: int = Field(
        2, ge=0, le=1000, description="Strikes before the connection is closed; 0: no limit."
    )
    max_concurrent_streams: int = Field(
        100, ge=1, le=100_000, description="Concurrent calls per connection."
    )
    max_connection_idle_s: float = Field(
        300.0,
        ge=1,
        le=WEEK_S,
        description="A connection without calls this long is closed; clients reconnect.",
    )
    max_connection_age_s: float | None = Field(
        None,
        ge=1,
        le=WEEK_S,
        description=(
            "Connections are closed after this long (clients and agents reconnect); "
            "null: never, since agents hold one long stream."
        ),
    )
    max_connection_age_grace_s: float = Field(
        30.0,
        ge=0,
        le=WEEK_S,
        description="Time calls get to finish when their connection reaches its age.",
    )


class SecurityConfig(BaseModel):
    """How agents and clients authenticate: mTLS for agents, bearer tokens for clients."""

    model_config = STRICT

    tls_dir: ExistingDir | None = Field(
        None,
        description=(
            "Folder made by `computenet-broker certs init` (ca.pem, broker.pem, "
            "broker-key.pem), relative to this config file; serves TLS, agents on a separate "
            "mTLS port."
        ),
    )
    tokens: ExistingFile | None = Field(
        None,
        description=(
            "Client token file (`computenet-broker tokens add`), relative to this config file; "
            "required with tls_dir."
        ),
    )
    revocations: ExistingFile | None = Field(
        None,
        description=(
            "YAML of revoked certificate serials and sites, relative to this config file; "
            "re-read within a second of a change (`computenet-broker certs revoke`)."
        ),
    )
    insecure: bool = Field(
        False,
        description=(
            "Plaintext without certificates, on a loopback listen.grpc only: for local demos "
            "and tests. Either this or tls_dir must be set to serve."
        ),
    )

    @model_validator(mode="after")
    def _one_mode(self) -> SecurityConfig:
        if self.insecure and self.tls_dir is not None:
            raise ValueError("insecure and tls_dir exclude each other")
        if self.tls_dir is not None and self.tokens is None:
            raise ValueError("tls_dir needs tokens (a client token file)")
        return self


class ClusterConfig(BaseModel):
    """Broker replicas sharing one PostgreSQL database: identity and the leader lease."""

    model_config = STRICT

    replica_id: str = Field(
        "",
        max_length=64,
        pattern=r"^[A-Za-z0-9._-]*$",
        description=(
            "This replica's id among the brokers on one database (also its rebalancing lease "
            "holder unless rebalance.holder is set); empty: `single` on SQLite, a fresh id per "
            "process on PostgreSQL."
        ),
    )
    advertise: AddressText | None = Field(
        None,
        description=(
            "HOST:PORT clients are referred to when this replica leads; null: the bound "
            "listen.grpc address (set it when listening on 0.0.0.0 or behind NAT)."
        ),
    )
    advertise_agents: AddressText | None = Field(
        None,
        description=(
            "HOST:PORT agents are referred to when this replica leads; null: the bound agents' "
            "port (or listen.grpc in insecure mode)."
        ),
    )
    leader_lease_s: float = Field(
        5.0,
        gt=0,
        le=600,
        description=(
            "Leader lease length: a dead leader is replaced within about this long; a leader "
            "that cannot renew stops acting step_down_margin_s before it ends."
        ),
    )
    renew_every_s: float = Field(
        1.0, gt=0, le=60, description="How often the leader renews and followers try to lead."
    )
    step_down_margin_s: float = Field(
        1.5,
        ge=0,
        le=60,
        description=(
            "The leader stops acting this long before its lease could end; must exceed the "
            "clock difference between replicas."
        ),
    )

    @model_validator(mode="after")
    def _room_for_renewals(self) -> ClusterConfig:
        if self.leader_lease_s - self.step_down_margin_s < 2 * self.renew_every_s:
            raise ValueError(
                "leader_lease_s minus step_down_margin_s must leave room for two renewals "
                f"(renew_every_s {self.renew_every_s:g})"
            )
        return self
