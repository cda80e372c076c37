"""Prometheus metrics of the broker: jobs by state, placement latency, sites, RPC outcomes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client import Counter as PromCounter

from broker.security.handlers import WrappedHandlers
from broker.store.accounting import UsageIncrement
from computenet.address import Address
from computenet.types import JobState, SiteStatus


class BrokerMetrics:
    """The broker's metric families, in their own registry (one per broker instance)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.jobs = Gauge("computenet_jobs", "Jobs by state.", ["state"], registry=self.registry)
        self.sites = Gauge(
            "computenet_sites", "Sites by status.", ["status"], registry=self.registry
        )
        self.stale_capacity = Gauge(
            "computenet_sites_capacity_stale",
            "Sites sending heartbeats whose capacity probe fails (their last good capacity kept).",
            registry=self.registry,
        )
        self.placement_seconds = Histogram(
            "computenet_placement_decision_seconds",
            "Time to take one placement decision.",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1.0),
            registry=self.registry,
        )
        self.leader_epoch = Gauge(
            "computenet_leader_epoch",
            "Leadership epoch this replica leads under (0 while it follows).",
            registry=self.registry,
        )
        self.is_leader = Gauge(
            "computenet_replica_is_leader",
            "1 while this replica leads, 0 while it follows.",
            registry=self.registry,
        )
        self.leader_terms = PromCounter(
            "computenet_leader_terms",
            "Terms this replica has started as leader (each one a failover or a first start).",
            registry=self.registry,
        )
        self.usage_card_hours = PromCounter(
            "computenet_usage_card_hours",
            "Card-hours recorded by usage accounting, by tenant and accelerator model.",
            ["tenant", "model"],
            registry=self.registry,
        )
        self.usage_kwh = PromCounter(
            "computenet_usage_kwh",
            "Facility energy recorded by usage accounting, kWh, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.usage_cny = PromCounter(
            "computenet_usage_cny",
            "Cost recorded by usage accounting (card rent plus energy), CNY, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.usage_carbon_kg = PromCounter(
            "computenet_usage_carbon_kg",
            "Carbon recorded by usage accounting, kg CO2, by tenant.",
            ["tenant"],
            registry=self.registry,
        )
        self.preemptions = PromCounter(
            "computenet_tenant_preemptions",
            "Jobs preempted to reclaim borrowed cards, by the tenant whose job was preempted.",
            ["tenant"],
            registry=self.registry,
        )
        self.rpcs = PromCounter(
            "computenet_rpcs",
            "RPCs by method and status code.",
            ["method", "code"],
            registry=self.registry,
        )

    def count_preemption(self, tenant: str) -> None:
        """Count one job of `tenant` preempted to reclaim cards for another tenant."""
        self.preemptions.labels(tenant=tenant).inc()

    def observe_decision(self, decision_ms: float) -> None:
        """Record one placement decision's latency."""
        self.placement_seconds.observe(decision_ms / 1000.0)

    def set_jobs(self, by_state: Counter[JobState]) -> None:
        """Set the jobs-by-state gauge."""
        for state in JobState:
            self.jobs.labels(state=state.value).set(by_state.get(state, 0))

    def set_sites(self, by_status: Counter[SiteStatus]) -> None:
        """Set the sites-by-status gauge."""
        for status in SiteStatus:
            self.sites.labels(status=status.value).set(by_status.get(status, 0))

    def set_leadership(self, *, epoch: int, leading: bool, changed: bool = False) -> None:
        """Record this replica's role; `changed` counts a new term."""
        self.leader_epoch.set(epoch)
        self.is_leader.set(1 if leading else 0)
        if changed:
            self.leader_terms.inc()

    def set_stale_capacity(self, sites: int) -> None:
        """Set the gauge of alive sites whose capacity probe fails (last good capacity kept)."""
        self.stale_capacity.set(sites)

    def count_usage(self, increments: Sequence[UsageIncrement]) -> None:
        """Add usage this replica recorded to the per-tenant counters (each increment is
        recorded by one replica once, so the counters summed over replicas never double)."""
        for inc in increments:
            tenant = inc.tenant
            for line in inc.lines:
                self.usage_card_hours.labels(tenant=tenant, model=line.model).inc(line.card_hours)
            self.usage_kwh.labels(tenant=tenant).inc(math.fsum(x.kwh for x in inc.lines))
            self.usage_carbon_kg.labels(tenant=tenant).inc(
                math.fsum(x.carbon_kg for x in inc.lines)
            )
            cost = math.fsum(x.card_cny + x.energy_cny for x in inc.lines)
            self.usage_cny.labels(tenant=tenant).inc(cost)

    def serve(self, address: Address) -> int:
        """Serve /metrics over HTTP; returns the bound port."""
        server, _thread = start_http_server(address.port, addr=address.host, registry=self.registry)
        return int(server.server_port)


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts unary RPCs by method and final status code."""

    def __init__(self, metrics: BrokerMetrics) -> None:
        self._metrics = metrics
        self._wrapped = WrappedHandlers()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method = handler_call_details.method
        return self._wrapped.get(method, handler, lambda: self._counted(method, handler))

    def _counted(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary
        counter = self._metrics.rpcs

        async def counted(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                response = await inner(request, context)
            except BaseException:
                code = context.code() or grpc.StatusCode.UNKNOWN
                counter.labels(method=method, code=_name(code)).inc()
                raise
            code = context.code() or grpc.StatusCode.OK
            counter.labels(method=method, code=_name(code)).inc()
            return response

        return grpc.unary_unary_rpc_method_handler(
            counted,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _name(code: Any) -> str:
    return code.name if isinstance(code, grpc.StatusCode) else str(code)
