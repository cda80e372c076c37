"""Headroom for expected demand in a replay: serving leaves the fast cards to training."""

from __future__ import annotations

import pytest

from broker.placement import Policy, PolicyConfig
from broker.simulate import Capacity, Scenario, WorkloadJob, compare
from broker.simulate.engine_policies import EngineOptimal
from broker.simulate.expected_demand import expected_demand
from broker.simulate.replay import replay
from topology import AcceleratorPool, Link, Site, Topology, UserRegion

HOUR_S = 3600.0


def _site(site_id: str, model: str, tflops: float, watts: float, price: float) -> Site:
    pool = AcceleratorPool(model=model, count=8, memory_gb=80, tflops_bf16=tflops, watts=watts)
    return Site(
        id=site_id, name=site_id, province="p", hub="h", lat=30.0, lon=100.0, side="west",
        kind="cloud", cpu_cores=1024, memory_gb=16384.0, interconnect_gbps=100.0, pue=1.2,
        carbon_kg_per_kwh=0.5, green_share=0.0, mtbf_hours=720.0, pools=(pool,),
        hourly_price_cny_per_kwh=(price,) * 24,
    )  # fmt: skip


@pytest.fixture(scope="module")
def two_sites() -> Topology:
    """A pool three times as fast where power is cheap, a slow one where it is dear; both
    2 ms from the only user region."""
    sites = [_site("fastdc", "fast", 900.0, 700.0, 0.1), _site("slowdc", "slow", 300.0, 350.0, 0.9)]
    region = UserRegion(id="city", lat=30.0, lon=101.0, demand_weight=1.0)
    links = [Link(a="city", b=s.id, rtt_ms=2, bandwidth_gbps=10, cny_per_gb=0.01) for s in sites]
    return Topology(sites, [region], links)


def _jobs() -> tuple[WorkloadJob, ...]:
    """Serving that could run on either part, then two 8-card training jobs that want the fast
    one (3 h on the slow part, 1 h on the fast)."""
    serving = WorkloadJob(
        job_id="s", submit_s=0.0, kind="inference", accelerator="", count=4, duration_s=HOUR_S,
        origin="city", dataset_gb=0.0, user_region="city", latency_slo_ms=15.0, tenant="t",
    )  # fmt: skip
    training = [_training(f"t{i}", submit_s) for i, submit_s in enumerate((60.0, 2 * HOUR_S))]
    return (serving, *training)


def _training(job_id: str, submit_s: float) -> WorkloadJob:
    return WorkloadJob(
        job_id=job_id, submit_s=submit_s, kind="training", accelerator="", count=8,
        duration_s=3 * HOUR_S, origin="fastdc", dataset_gb=0.0, user_region="",
        latency_slo_ms=None, tenant="t", accelerators=("slow", "fast"), reference="slow",
        workload="vision-training",
    )  # fmt: skip


def _where(result: object, job_id: str) -> str:
    return next(r.site for r in result.runs if r.job.job_id == job_id)  # type: ignore[attr-defined]


def test_expected_training_keeps_serving_off_the_fast_part(two_sites: Topology) -> None:
    jobs = _jobs()
    expected = expected_demand(jobs)
    assert expected.scaled and expected.serving
    policy = Policy.default(PolicyConfig())
    without = replay(jobs, Capacity(two_sites), EngineOptimal(policy))
    with_headroom = replay(jobs, Capacity(two_sites), EngineOptimal(policy, expected=expected))
    # energy alone puts serving on the cheap-power fast part, and the first training job,
    # which needs a whole pool, on the slow one
    assert _where(without, "s") == "fastdc" and _where(without, "t0") == "slowdc"
    assert _where(with_headroom, "s") == "slowdc" and _where(with_headroom, "t0") == "fastdc"
    finish = {r.job.job_id: r.end_s for r in with_headroom.runs}
    assert finish["t0"] - 60.0 < 1.1 * HOUR_S


def test_the_comparison_keeps_headroom_for_the_workloads_own_demand(two_sites: Topology) -> None:
    aware = compare(Scenario(_jobs(), two_sites), ["optimal"])["optimal"]
    blind = compare(Scenario(_jobs(), two_sites, speed_blind=True), ["optimal"])["optimal"]
    # aware, both training jobs get the fast part (1 h each); blind, the first takes the slow
    # part's 3 h because serving holds half of the fast pool
    assert aware.jct_mean_h == pytest.approx(1.0, abs=0.05)
    assert blind.jct_mean_h > 1.5
