"""Recorded usage shows in the broker's Prometheus counters, per tenant."""

from __future__ import annotations

from broker.rpc.metrics import BrokerMetrics
from broker.store.accounting import UsageIncrement, UsageLine
from computenet.types import JobId, SiteId, TenantId


def test_recorded_usage_feeds_the_per_tenant_counters() -> None:
    metrics = BrokerMetrics()
    line = UsageLine("a800", "2026-12-05", 8, 8.0, 4.0, 2.0, 56.0, 3.0)
    inc = UsageIncrement(JobId("j"), 1, TenantId("lab-a"), SiteId("s"), 0, 1, (line, line))
    metrics.count_usage([inc, inc])
    get = metrics.registry.get_sample_value
    assert get("computenet_usage_card_hours_total", {"tenant": "lab-a", "model": "a800"}) == 32.0
    assert get("computenet_usage_kwh_total", {"tenant": "lab-a"}) == 16.0
    assert get("computenet_usage_cny_total", {"tenant": "lab-a"}) == 4 * 59.0
    assert get("computenet_usage_carbon_kg_total", {"tenant": "lab-a"}) == 8.0
