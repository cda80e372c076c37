"""The queue and tenants views as data."""

from __future__ import annotations

from broker.tenancy import (
    JobDemand,
    TenantPolicy,
    TenantsTable,
    TenantUsage,
    UsageSnapshot,
    WaitReason,
    queue_entries,
    tenant_rows,
)


def test_queue_entries_number_the_order_and_carry_reasons() -> None:
    order = [
        JobDemand("j2", "b", "a800", 2),
        JobDemand("j1", "a", "a800", 1),
    ]
    entries = queue_entries(order, {"j1": (WaitReason.OVER_QUOTA, "over quota: a holds 9")})
    assert [(e.position, e.job_id) for e in entries] == [(1, "j2"), (2, "j1")]
    assert entries[1].reason == WaitReason.OVER_QUOTA and entries[1].text.startswith("over")
    assert entries[0].reason is None and entries[0].text == ""


def test_tenant_rows_show_quota_borrowed_and_share() -> None:
    table = TenantsTable(
        tenants={"lab-a": TenantPolicy(quota={"a800": 4}, borrowing_limit={"a800": 4})}
    )
    usage = UsageSnapshot(
        tenants={
            "lab-a": TenantUsage(held={"a800": 6}),
            "guest": TenantUsage(held={"a800": 2}),
        },
        capacity={"a800": 8},
    )
    rows = {r.tenant: r for r in tenant_rows(table, usage)}
    assert rows["lab-a"].configured and not rows["guest"].configured
    assert rows["lab-a"].borrowed == {"a800": 2} and rows["guest"].borrowed == {"a800": 2}
    assert rows["guest"].borrowing_limit == {"a800": None}
    assert rows["lab-a"].fair_share == 6 / 8
