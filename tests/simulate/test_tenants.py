"""Tenancy in the replay: Jain's index, the fair-share order and quotas, the per-tenant report."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.simulate import Capacity, Scenario, WorkloadJob, make_policy, replay, run_policy
from broker.simulate.fairness import jain_index, tenants_outcome
from broker.simulate.tenancy import ReplayTenancy
from broker.tenancy import TenantPolicy, TenantsTable
from topology import Topology

allocations = st.lists(
    st.floats(min_value=0.0, max_value=1e6, allow_nan=False, allow_infinity=False),
    min_size=1,
    max_size=20,
)


@given(allocations)
def test_jain_index_lies_between_one_over_n_and_one(xs: list[float]) -> None:
    j = jain_index(xs)
    assert 1.0 / len(xs) - 1e-12 <= j <= 1.0 + 1e-12


@given(st.floats(min_value=1e-6, max_value=1e6), st.integers(min_value=1, max_value=50))
def test_jain_index_of_equal_allocations_is_one(x: float, n: int) -> None:
    assert jain_index([x] * n) == pytest.approx(1.0)


@given(allocations, st.floats(min_value=1e-3, max_value=1e3))
def test_jain_index_does_not_change_with_scale(xs: list[float], factor: float) -> None:
    assert jain_index([x * factor for x in xs]) == pytest.approx(jain_index(xs), rel=1e-9)


def test_jain_index_of_one_taking_all_is_one_over_n() -> None:
    assert jain_index([5.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        jain_index([1.0, -1.0])


HOUR_S = 3600.0
TABLE = TenantsTable(tenants={"lab": TenantPolicy(quota={"a100": 8})})
"""`lab` is guaranteed 8 a100; `flood` is unlisted: no quota, borrows idle cards."""


def _job(job_id: str, tenant: str, submit_s: float, hours: float) -> WorkloadJob:
    return WorkloadJob(
        job_id=job_id,
        submit_s=submit_s,
        kind="training",
        accelerator="a100",
        count=4,
        duration_s=hours * HOUR_S,
        origin="near",
        dataset_gb=0.0,
        user_region="",
        latency_slo_ms=None,
        tenant=tenant,
    )


def _flooded() -> list[WorkloadJob]:
    """`flood` fills all 20 a100 (5 gangs of 4, freeing one pool's worth an hour from 2 h),
    then queues 3 more; `lab` submits 2 later, within its quota."""
    filling = [_job(f"fill-{k}", "flood", 0.0, 2.0 + k) for k in range(5)]
    more = [_job(f"more-{k}", "flood", 100.0, 1.0) for k in range(3)]
    lab = [_job(f"lab-{k}", "lab", 200.0, 2.0) for k in range(2)]
    return filling + more + lab


@pytest.mark.parametrize("name", ["nearest", "greedy", "optimal"])
def test_a_tenant_within_quota_starts_before_a_flooding_tenants_borrowed_jobs(
    tiny: Topology, name: str
) -> None:
    scenario = Scenario(tuple(_flooded()), tiny, tenants=TABLE)
    with_tenancy = run_policy(scenario, name)
    without = run_policy(
        Scenario(tuple(_flooded()), tiny, tenants=TABLE, admit_tenants=False), name
    )
    assert with_tenancy.tenants is not None and without.tenants is not None
    lab, lab_before = with_tenancy.tenants.tenants["lab"], without.tenants.tenants["lab"]
    flood, flood_before = with_tenancy.tenants.tenants["flood"], without.tenants.tenants["flood"]
    # the plain queue serves the older borrowed jobs first; tenancy serves lab's quota first
    assert lab.wait_mean_h < lab_before.wait_mean_h
    assert flood.wait_mean_h > flood_before.wait_mean_h
    assert (lab.jobs, flood.jobs) == (2, 8)
    assert lab.weight_share == flood.weight_share == pytest.approx(0.5)
    assert with_tenancy.tenants.jain != without.tenants.jain


def test_the_order_of_starts_follows_the_quota(tiny: Topology) -> None:
    capacity = Capacity(tiny)
    policy = make_policy("nearest", tiny, capacity, seed=0, config=Scenario((), tiny).config)
    result = replay(_flooded(), capacity, policy, admission=ReplayTenancy(TABLE))
    start = {run.job.job_id: run.start_s for run in result.runs}
    queued_flood = [start[f"more-{k}"] for k in range(3)]
    assert max(start["lab-0"], start["lab-1"]) < min(queued_flood)
    outcome = tenants_outcome(result, TABLE)
    assert outcome.tenants["lab"].card_hours == pytest.approx(2 * 4 * 2.0)
    shares = sum(t.card_hour_share for t in outcome.tenants.values())
    assert shares == pytest.approx(1.0)


def test_a_tenant_never_holds_more_than_quota_plus_borrowing_limit(tiny: Topology) -> None:
    # `capped` may borrow 4 a100 beyond its quota of 4 (8 at most) though 20 are idle; its jobs
    # accept a100 or h20, so admission holds the ones past 8 a100 to h20
    table = TenantsTable(
        tenants={"capped": TenantPolicy(quota={"a100": 4}, borrowing_limit={"a100": 4})}
    )
    jobs = [
        WorkloadJob(
            job_id=f"c-{k}",
            submit_s=0.0,
            kind="training",
            accelerator="",
            accelerators=("a100", "h20"),
            count=2,
            duration_s=HOUR_S,
            origin="mid",
            dataset_gb=0.0,
            user_region="",
            latency_slo_ms=None,
            tenant="capped",
        )
        for k in range(6)
    ]
    capacity = Capacity(tiny)
    policy = make_policy("nearest", tiny, capacity, seed=0, config=Scenario((), tiny).config)
    result = replay(jobs, capacity, policy, admission=ReplayTenancy(table))
    first = [run for run in result.runs if run.start_s == 0.0]
    cards: dict[str, int] = {}
    for run in first:
        for k, n in run.allocation:
            model = capacity.pools[run.site][k].model
            cards[model] = cards.get(model, 0) + n
    assert cards == {"a100": 8, "h20": 2}  # the sixth waits: h20 is full, a100 closed to it
    assert {run.job.job_id for run in result.runs} == {f"c-{k}" for k in range(6)}
    assert all(run.job.accelerators == ("a100", "h20") for run in result.runs)


def test_preemption_reclaims_borrowed_cards_and_the_rest_resumes(tiny: Topology) -> None:
    # both hold a quota of 8 a100; `flood` fills all 20 at t=0 (8 within its quota, 12
    # borrowed), `lab` then asks its 8
    table = TenantsTable(
        tenants={"lab": TenantPolicy(quota={"a100": 8}), "flood": TenantPolicy(quota={"a100": 8})}
    )
    jobs = [_job(f"fill-{k}", "flood", 0.0, 10.0) for k in range(5)]
    jobs += [_job(f"lab-{k}", "lab", HOUR_S, 1.0) for k in range(2)]
    capacity = Capacity(tiny)
    policy = make_policy("nearest", tiny, capacity, seed=0, config=Scenario((), tiny).config)
    tenancy = ReplayTenancy(table, preempt=True)
    result = replay(jobs, capacity, policy, admission=tenancy)

    first = {run.job.job_id: run for run in result.runs if not run.resumed}
    assert all(first[f"lab-{k}"].wait_s <= 120.0 for k in range(2))  # the next instant
    cut = {result.runs[p.run_index].job.job_id for p in result.preemptions}
    # never one within flood's quota (its two oldest jobs), only borrowed ones, and no more
    # than lab's shortfall
    assert cut <= {"fill-2", "fill-3", "fill-4"} and len(cut) == 2
    overhead_s = 0.25 * HOUR_S  # RebalanceConfig().restart_overhead_h
    for p in result.preemptions:
        assert (p.tenant, p.cards, p.redo_s) == ("flood", 4, 0.0)  # stopped with a checkpoint
        assert p.overhead_s == pytest.approx(overhead_s)
    for job_id in cut:
        parts = [run for run in result.runs if run.job.job_id == job_id]
        assert [run.resumed for run in parts] == [False, True]
        work_s = sum(run.run_s for run in parts)
        assert work_s == pytest.approx(10.0 * HOUR_S + overhead_s)
    assert result.stranded == () and result.requeued == ()
    outcome = tenants_outcome(result, table)
    assert outcome.tenants["flood"].preempted == 2
    assert outcome.tenants["flood"].lost_card_hours == pytest.approx(2 * 4 * 0.25)
    assert outcome.tenants["lab"].preempted == 0


def test_without_preemption_the_tenant_within_quota_waits_for_cards_to_free(
    tiny: Topology,
) -> None:
    jobs = [_job(f"fill-{k}", "flood", 0.0, 10.0) for k in range(5)]
    jobs += [_job(f"lab-{k}", "lab", HOUR_S, 1.0) for k in range(2)]
    capacity = Capacity(tiny)
    policy = make_policy("nearest", tiny, capacity, seed=0, config=Scenario((), tiny).config)
    result = replay(jobs, capacity, policy, admission=ReplayTenancy(TABLE))
    assert result.preemptions == ()
    lab = [run for run in result.runs if run.job.tenant == "lab"]
    assert all(run.start_s >= 10.0 * HOUR_S for run in lab)


def test_the_documented_tenants_file_loads() -> None:
    from pathlib import Path

    from broker.config.tenants_file import load_tenants_file

    docs = Path(__file__).resolve().parents[2] / "docs"
    table = load_tenants_file(docs / "examples" / "philly-tenants.yaml")
    # the virtual clusters' names stay strings (quoted: YAML would read 6214e9 as a number)
    assert {"6214e9", "103959", "genai"} <= set(table.tenants)
    assert table.policy("b436b2").ceiling("910b") == 64
    assert table.policy("6214e9").weight == 2
    assert "philly-tenants.yaml" in (docs / "simulator.md").read_text(encoding="utf-8")
