"""Turns a validated BrokerConfig into the settings objects the broker process runs with."""

from __future__ import annotations

from pathlib import Path

from broker.config.rebalance import RebalanceSection
from broker.config.schema import BrokerConfig, JobsConfig
from broker.config.sections import ClusterConfig, LimitsConfig, SecurityConfig, TransportConfig
from broker.config.tenants import tenants_table
from broker.control import RetryPolicy
from broker.leadership.settings import ClusterSettings
from broker.leadership.term import LeadershipTiming
from broker.rebalance.service import RebalanceSettings
from broker.security.limits import LimitSettings, ServerLimits
from broker.security.setup import SecuritySettings
from broker.settings import BrokerSettings
from computenet.address import Address, parse_address


def broker_settings(config: BrokerConfig, config_path: Path | None = None) -> BrokerSettings:
    """The BrokerSettings of `config` (addresses were checked when the config was validated),
    read from `config_path` if it came from a file (its tenants are re-read from there)."""
    return BrokerSettings(
        listen=parse_address(config.listen.grpc),
        db_url=config.store.url,
        topology_path=_path(config.topology.path),
        metrics_listen=_address(config.listen.metrics),
        http_listen=_address(config.listen.http),
        suspect_after_s=config.liveness.suspect_after_s,
        lost_after_s=config.liveness.lost_after_s,
        heartbeat_interval_s=config.liveness.heartbeat_interval_s,
        lease_s=config.liveness.lease_s,
        clock_skew_margin_s=config.liveness.clock_skew_margin_s,
        stale_capacity_after_s=config.liveness.stale_capacity_after_s,
        policy=config.placement.policy(),
        placement_round_budget_s=config.placement.round_budget_s,
        security=security_settings(config.security, config.limits, config.listen.agents),
        rebalance=rebalance_settings(config.rebalance, config.cluster.replica_id),
        transport=server_limits(config.transport),
        retry=retry_policy(config.jobs),
        cluster=cluster_settings(config.cluster),
        tenants=tenants_table(config.tenants, config.tenancy),
        config_path=config_path,
        usage_every_s=config.accounting.every_s,
    )


def cluster_settings(cluster: ClusterConfig) -> ClusterSettings:
    """This replica's identity and the leader lease timing, as the elections take them."""
    return ClusterSettings(
        replica_id=cluster.replica_id,
        advertise=cluster.advertise or "",
        advertise_agents=cluster.advertise_agents or "",
        timing=LeadershipTiming(
            lease_s=cluster.leader_lease_s,
            renew_every_s=cluster.renew_every_s,
            step_down_margin_s=cluster.step_down_margin_s,
        ),
    )


def retry_policy(jobs: JobsConfig) -> RetryPolicy:
    """Caps and backoff for jobs whose attempts fail to start, as the lifecycle core takes them."""
    return RetryPolicy(
        max_attempts=jobs.max_launch_attempts,
        max_sites=jobs.max_sites,
        backoff_s=jobs.retry_backoff_s,
        backoff_max_s=jobs.retry_backoff_max_s,
    )


def rebalance_settings(rebalance: RebalanceSection, replica_id: str = "") -> RebalanceSettings:
    """Schedule, lease and planner rules as the rebalancing service takes them."""
    return RebalanceSettings(
        every_s=rebalance.every_s,
        holder=rebalance.holder or replica_id,
        dry_run=rebalance.dry_run,
        lease_ttl_s=rebalance.lease_ttl_s,
        tou_triggers=rebalance.tou_triggers,
        tou_lead_minutes=rebalance.tou_lead_minutes,
        crontabs=tuple(rebalance.crontabs),
        jitter_s=rebalance.jitter_s,
        misfire_grace_time_s=rebalance.misfire_grace_time_s,
        planner=rebalance.planner.rebalance_config(rebalance.every_s),
    )


def security_settings(
    security: SecurityConfig, limits: LimitsConfig, agent_listen: str | None
) -> SecuritySettings:
    """TLS, tokens and call limits as the security setup takes them."""
    return SecuritySettings(
        tls_dir=_path(security.tls_dir),
        agent_listen=_address(agent_listen),
        tokens_path=_path(security.tokens),
        revocations_path=_path(security.revocations),
        insecure=security.insecure,
        limits=limit_settings(limits),
    )


def limit_settings(limits: LimitsConfig) -> LimitSettings:
    """Per-call limits; a rate of 0 charges no method to the tenants' buckets of that kind."""
    default = LimitSettings()
    charged = limits.submit_rate_per_s > 0
    reads = limits.read_rate_per_s > 0
    return LimitSettings(
        read_rate_per_s=limits.read_rate_per_s if reads else default.read_rate_per_s,
        read_burst=limits.reads_burst() if reads else default.read_burst,
        read_limited_methods=default.read_limited_methods if reads else frozenset(),
        auth_failures_burst=limits.auth_failures_burst,
        auth_failures_per_s=limits.auth_failures_per_s,
        # the buckets are built even when nothing is charged, and need a positive rate
        submit_rate_per_s=limits.submit_rate_per_s if charged else default.submit_rate_per_s,
        submit_burst=limits.burst() if charged else default.submit_burst,
        rate_limited_methods=default.rate_limited_methods if charged else frozenset(),
        max_streams_per_site=limits.max_streams_per_site,
        stream_retry_after_s=limits.stream_retry_after_s,
        handler_timeout_s=limits.handler_timeout_s,
    )


def server_limits(transport: TransportConfig) -> ServerLimits:
    """Message size, keepalive and connection limits as the gRPC server options take them."""
    return ServerLimits(**transport.model_dump())


def _path(value: str | None) -> Path | None:
    return Path(value) if value is not None else None


def _address(value: str | None) -> Address | None:
    return parse_address(value) if value is not None else None
