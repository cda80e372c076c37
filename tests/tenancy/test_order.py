"""The fair-share order: deterministic, weight-monotone, priority and age within a tenant."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.tenancy import (
    DecayedUsage,
    FairSharePolicy,
    JobDemand,
    TenantPolicy,
    TenantsTable,
    TenantUsage,
    UsageSnapshot,
    accrue_card_hours,
    dominant_share,
    pending_order,
)

CAPACITY = {"a800": 8, "h100": 4}


def demand(job_id: str, tenant: str, cards: int = 1, **kw: object) -> JobDemand:
    return JobDemand(job_id=job_id, tenant=tenant, model="a800", cards=cards, **kw)  # type: ignore[arg-type]


def test_the_tenant_with_less_past_use_goes_first() -> None:
    usage = UsageSnapshot(tenants={"a": TenantUsage(card_hours={"a800": 50.0})}, capacity=CAPACITY)
    order = pending_order([demand("a1", "a"), demand("b1", "b")], TenantsTable(), usage)
    assert [j.job_id for j in order] == ["b1", "a1"]


def test_a_job_within_nominal_quota_goes_before_any_borrowing_one() -> None:
    table = TenantsTable(tenants={"b": TenantPolicy(quota={"a800": 2})})
    usage = UsageSnapshot(
        tenants={"b": TenantUsage(held={"a800": 0}, card_hours={"a800": 500.0})},
        capacity=CAPACITY,
    )
    order = pending_order([demand("a1", "a"), demand("b1", "b", 2)], table, usage)
    assert [j.job_id for j in order] == ["b1", "a1"]


def test_within_a_tenant_priority_then_age() -> None:
    jobs = [
        demand("old-low", "a", priority=0, created_unix_ms=1),
        demand("new-high", "a", priority=5, created_unix_ms=9),
        demand("new-low", "a", priority=0, created_unix_ms=5),
    ]
    order = pending_order(jobs, TenantsTable(), UsageSnapshot(capacity=CAPACITY))
    assert [j.job_id for j in order] == ["new-high", "old-low", "new-low"]


def test_equal_tenants_interleave() -> None:
    jobs = [demand(f"{t}{i}", t, 2, created_unix_ms=i) for t in "ab" for i in range(3)]
    order = pending_order(jobs, TenantsTable(), UsageSnapshot(capacity=CAPACITY))
    assert [j.tenant for j in order] == ["a", "b", "a", "b", "a", "b"]


def test_a_heavier_weight_takes_more_turns() -> None:
    table = TenantsTable(tenants={"a": TenantPolicy(weight=2.0), "b": TenantPolicy(weight=1.0)})
    jobs = [demand(f"{t}{i}", t, 1, created_unix_ms=i) for t in "ab" for i in range(6)]
    first_six = pending_order(jobs, table, UsageSnapshot(capacity=CAPACITY))[:6]
    assert sum(1 for j in first_six if j.tenant == "a") == 4


def test_decayed_card_hours_halve_every_half_life() -> None:
    held = {"a": {"a800": 4}}
    grown = accrue_card_hours({}, held, elapsed_h=1.0, half_life_h=24.0)
    assert 3.9 < grown["a"]["a800"] < 4.0  # four cards for an hour, a little decayed
    later = accrue_card_hours(grown, {}, elapsed_h=24.0, half_life_h=24.0)
    assert abs(later["a"]["a800"] - grown["a"]["a800"] / 2) < 1e-9
    split = accrue_card_hours(
        accrue_card_hours({}, held, 0.5, 24.0), held, elapsed_h=0.5, half_life_h=24.0
    )
    assert abs(split["a"]["a800"] - grown["a"]["a800"]) < 1e-9


def test_usage_accrues_the_cards_held_at_each_snapshot_over_the_step_before_it() -> None:
    usage = DecayedUsage()
    held = {"a": {"a800": 4}}
    first = usage.snapshot(held, CAPACITY, now_h=10.0, half_life_h=24.0)
    assert first.of("a").held == {"a800": 4} and first.of("a").card_hours == {}
    assert first.capacity == CAPACITY
    second = usage.snapshot({}, CAPACITY, now_h=11.0, half_life_h=24.0)
    # the step's end held nothing: the step counts nothing, as in the broker's rounds
    assert second.of("a").card_hours == {} and second.of("a").held == {}
    third = usage.snapshot(held, CAPACITY, now_h=12.0, half_life_h=24.0)
    expected = accrue_card_hours({}, held, elapsed_h=1.0, half_life_h=24.0)
    assert third.of("a").card_hours == pytest.approx(expected["a"])


def test_a_card_held_forever_has_a_share_of_its_capacity() -> None:
    fair = FairSharePolicy(half_life_h=1.0)
    hours = accrue_card_hours({}, {"a": {"a800": 8}}, elapsed_h=100.0, half_life_h=1.0)
    usage = UsageSnapshot(tenants={"a": TenantUsage(card_hours=hours["a"])}, capacity=CAPACITY)
    assert abs(dominant_share("a", TenantsTable(fair_share=fair), usage) - 1.0) < 1e-6


TENANTS = ["t0", "t1", "t2"]


@st.composite
def queues(draw: st.DrawFn) -> tuple[TenantsTable, UsageSnapshot, list[JobDemand]]:
    table = TenantsTable(
        tenants={
            t: TenantPolicy(
                weight=draw(st.sampled_from([0.5, 1.0, 3.0])),
                quota={"a800": draw(st.integers(0, 4))},
            )
            for t in TENANTS
        }
    )
    usage = UsageSnapshot(
        tenants={
            t: TenantUsage(
                held={"a800": draw(st.integers(0, 4))},
                card_hours={"a800": draw(st.floats(0, 100))},
            )
            for t in TENANTS
        },
        capacity=CAPACITY,
    )
    jobs = [
        JobDemand(
            job_id=f"j{i}",
            tenant=draw(st.sampled_from(TENANTS)),
            model=draw(st.sampled_from(["a800", "h100", ""])),
            cards=draw(st.integers(0, 4)),
            priority=draw(st.integers(-1, 1)),
            created_unix_ms=draw(st.integers(0, 20)),
        )
        for i in range(draw(st.integers(0, 20)))
    ]
    return table, usage, jobs


@settings(max_examples=200, deadline=None)
@given(queues(), st.randoms(use_true_random=False))
def test_the_order_is_deterministic_and_a_permutation(
    queue: tuple[TenantsTable, UsageSnapshot, list[JobDemand]], rnd: object
) -> None:
    table, usage, jobs = queue
    shuffled = list(jobs)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    order = pending_order(jobs, table, usage)
    assert order == pending_order(shuffled, table, usage)
    assert sorted(j.job_id for j in order) == sorted(j.job_id for j in jobs)


@settings(max_examples=200, deadline=None)
@given(queues(), st.sampled_from(TENANTS), st.sampled_from([1.5, 2.0, 10.0]))
def test_raising_a_weight_never_moves_that_tenants_jobs_later(
    queue: tuple[TenantsTable, UsageSnapshot, list[JobDemand]], tenant: str, factor: float
) -> None:
    table, usage, jobs = queue
    before = {j.job_id: i for i, j in enumerate(pending_order(jobs, table, usage))}
    policy = table.policy(tenant)
    heavier = TenantsTable(
        tenants={**table.tenants, tenant: replace(policy, weight=policy.weight * factor)}
    )
    after = {j.job_id: i for i, j in enumerate(pending_order(jobs, heavier, usage))}
    for job in jobs:
        if job.tenant == tenant:
            assert after[job.job_id] <= before[job.job_id]
