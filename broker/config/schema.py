"""The schema of the broker config file: the root model and the policy sections.

Every field has a description (docs/broker-config.md is generated from them) and a default,
so an empty file is a valid config; unknown keys, wrong types and values out of range are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from broker.config.fields import STRICT
from broker.config.rebalance import RebalanceSection
from broker.config.sections import (
    ClusterConfig,
    LimitsConfig,
    ListenConfig,
    LivenessConfig,
    SecurityConfig,
    StoreConfig,
    TopologyConfig,
    TransportConfig,
)
from broker.config.tenants import Name, TenancyConfig, TenantConfig
from broker.placement.config import PolicyConfig
from computenet.address import AddressError, parse_address

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class PlacementConfig(PolicyConfig):
    """Placement policy weights and prices, and the time budget of one joint placement round."""

    model_config = STRICT

    round_budget_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description=(
            "Time budget in seconds of one joint placement round over the pending queue; the "
            "round keeps the best assignment it found within it."
        ),
    )

    def policy(self) -> PolicyConfig:
        """The policy part, as the placement core takes it."""
        return PolicyConfig(**self.model_dump(exclude={"round_budget_s"}))


class AccountingConfig(BaseModel):
    """Usage accounting (docs/usage.md)."""

    model_config = STRICT

    every_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description=(
            "How often the leader prices running attempts' usage and records it; an attempt "
            "that ends is priced at once whatever this is."
        ),
    )


class JobsConfig(BaseModel):
    """Retries of jobs whose attempts fail to start (docs/faults.md: Jobs that cannot start)."""

    model_config = STRICT

    max_launch_attempts: int = Field(
        5,
        ge=1,
        le=100,
        description=(
            "Failed starts (an attempt its site could not launch, or whose site was lost before "
            "it ran) after which the job fails with every reason."
        ),
    )
    max_sites: int = Field(
        3,
        ge=1,
        le=10_000,
        description="Distinct sites with a failed start after which the job fails.",
    )
    retry_backoff_s: float = Field(
        5.0,
        ge=0,
        le=3600,
        description=(
            "Seconds before a job is placed again after its first failed start; doubles with "
            "each further one."
        ),
    )
    retry_backoff_max_s: float = Field(
        300.0, ge=0, le=86_400, description="The longest wait between two attempts, seconds."
    )

    @model_validator(mode="after")
    def _max_covers_first(self) -> JobsConfig:
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ValueError("retry_backoff_max_s must be at least retry_backoff_s")
        return self


class BrokerConfig(BaseModel):
    """Everything `computenet-broker serve` is configured with, section by section."""

    model_config = STRICT

    listen: ListenConfig = Field(
        default_factory=ListenConfig, description="Addresses the broker listens on."
    )
    store: StoreConfig = Field(
        default_factory=StoreConfig,
        description="The database of jobs, events, capacity holds, leases and rebalancing runs.",
    )
    topology: TopologyConfig = Field(
        default_factory=TopologyConfig, description="The federation's sites, regions and links."
    )
    liveness: LivenessConfig = Field(
        default_factory=LivenessConfig,
        description="When silent sites become suspect and lost; agents' heartbeat and lease.",
    )
    placement: PlacementConfig = Field(
        default_factory=PlacementConfig,
        description="Placement policy: cost term prices and weights, batch limits, round budget.",
    )
    jobs: JobsConfig = Field(
        default_factory=JobsConfig,
        description="Retries of jobs that cannot start: attempt and site caps, backoff.",
    )
    rebalance: RebalanceSection = Field(
        default_factory=RebalanceSection,
        description=(
            "Rebalancing runs: interval, time-of-use and crontab triggers, lease, planner rules."
        ),
    )
    limits: LimitsConfig = Field(
        default_factory=LimitsConfig,
        description="Abuse limits: submissions per tenant, streams per site, call deadline.",
    )
    transport: TransportConfig = Field(
        default_factory=TransportConfig,
        description="gRPC transport limits: message size, keepalive, connections and calls.",
    )
    security: SecurityConfig = Field(
        default_factory=SecurityConfig,
        description="Authentication: TLS and agent mTLS, client tokens, revocations, or insecure.",
    )
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig,
        description="Replicas on one PostgreSQL: this replica's id, addresses and leader lease.",
    )
    tenancy: TenancyConfig = Field(
        default_factory=TenancyConfig,
        description=(
            "Rules for all tenants: unlisted tenants, priority classes, fair share, preemption "
            "(docs/tenants.md)."
        ),
    )
    tenants: dict[Name, TenantConfig] = Field(
        default_factory=dict,
        description=(
            "Tenants by name (the tenant of a client token): weight, nominal quota and "
            "borrowing limit per accelerator model. Re-read while the broker runs when this "
            "file changes; a tenant missing here has no quota and only borrows idle cards."
        ),
    )
    accounting: AccountingConfig = Field(
        default_factory=AccountingConfig,
        description="Usage accounting: how often running attempts are priced (docs/usage.md).",
    )
    log_level: LogLevel = Field(
        "INFO",
        description=(
            "Log level of the broker process; the libraries' own INFO and DEBUG lines (alembic, "
            "APScheduler, gRPC, SQLAlchemy) show only at DEBUG."
        ),
    )

    @field_validator("tenants")
    @classmethod
    def _priority_classes_exist(
        cls, tenants: dict[str, TenantConfig], info: ValidationInfo
    ) -> dict[str, TenantConfig]:
        tenancy = info.data.get("tenancy")
        if not isinstance(tenancy, TenancyConfig):
            return tenants
        for name, entry in tenants.items():
            wanted = entry.max_priority_class
            if wanted is not None and wanted not in tenancy.priority_classes:
                known = ", ".join(sorted(tenancy.priority_classes)) or "none"
                raise ValueError(
                    f"{name}: max_priority_class {wanted!r} is not a priority class "
                    f"(tenancy.priority_classes: {known})"
                )
        return tenants

    @field_validator("security")
    @classmethod
    def _insecure_only_on_loopback(
        cls, security: SecurityConfig, info: ValidationInfo
    ) -> SecurityConfig:
        listen = info.data.get("listen")
        if not security.insecure or not isinstance(listen, ListenConfig):
            return security
        try:
            loopback = parse_address(listen.grpc).is_loopback
        except AddressError:
            return security  # listen.grpc is reported on its own
        if not loopback:
            raise ValueError(f"insecure mode needs a loopback listen.grpc, not {listen.grpc!r}")
        return security
