"""Cards of different speeds: run times scale with the card, and --speed-blind replays blind."""

from __future__ import annotations

import pytest

from broker.simulate import Capacity, Scenario, WorkloadJob, compare, load_workload
from broker.simulate.trace_gpus import INFERENCE_PARTS, training_parts
from topology import AcceleratorPool, Link, Site, Topology, UserRegion, default_topology

HOUR_S = 3600.0


def _pool(model: str, count: int, tflops: float, watts: float) -> AcceleratorPool:
    return AcceleratorPool(model=model, count=count, memory_gb=80, tflops_bf16=tflops, watts=watts)


@pytest.fixture(scope="module")
def mixed() -> Topology:
    """One site with a slow, frugal pool and a pool three times as fast at twice the power."""
    site = Site(
        id="dc", name="dc", province="p", hub="h", lat=30.0, lon=100.0, side="west",
        kind="cloud", cpu_cores=1024, memory_gb=16384.0, interconnect_gbps=100.0, pue=1.2,
        carbon_kg_per_kwh=0.5, green_share=0.0, mtbf_hours=720.0,
        pools=(_pool("slow", 8, 300.0, 350.0), _pool("fast", 8, 900.0, 700.0)),
        hourly_price_cny_per_kwh=(0.4,) * 24,
    )  # fmt: skip
    region = UserRegion(id="city", lat=30.0, lon=101.0, demand_weight=1.0)
    link = Link(a="city", b="dc", rtt_ms=2, bandwidth_gbps=10, cny_per_gb=0.01)
    return Topology([site], [region], [link])


def _training(job_id: str, submit_s: float = 0.0) -> WorkloadJob:
    return WorkloadJob(
        job_id=job_id,
        submit_s=submit_s,
        kind="training",
        accelerator="",
        count=8,
        duration_s=3 * HOUR_S,
        origin="dc",
        dataset_gb=0.0,
        user_region="",
        latency_slo_ms=None,
        tenant="t",
        accelerators=("slow", "fast"),
        reference="slow",
        workload="vision-training",
    )


@pytest.mark.parametrize("policy", ["nearest", "cheapest-energy", "greedy", "optimal"])
def test_the_faster_part_wins_unless_the_replay_is_speed_blind(
    mixed: Topology, policy: str
) -> None:
    assert mixed.speed("fast", "slow", "vision-training") == pytest.approx(3.0)
    jobs = (_training("a"),)
    aware = compare(Scenario(jobs, mixed), [policy])[policy]
    blind = compare(Scenario(jobs, mixed, speed_blind=True), [policy])[policy]
    # aware: 3 h on the slow part are 1 h on the fast one, at 2x power: less energy, sooner done
    assert aware.jct_mean_h == pytest.approx(1.0, abs=0.02)
    assert blind.jct_mean_h == pytest.approx(3.0, abs=0.02)
    assert aware.energy_kwh < blind.energy_kwh
    assert aware.energy_cny < blind.energy_cny


def test_a_speed_blind_replay_still_runs_at_the_real_speed(mixed: Topology) -> None:
    # the blind pool rule fills the frugal slow pool first; the second job lands on the fast
    # one and really runs three times as fast there
    jobs = (_training("a"), _training("b", submit_s=1.0))
    capacity = Capacity(mixed, speed_blind=True)
    first = capacity.fit("dc", jobs[0])
    assert first is not None and capacity.pools["dc"][first[0][0]].model == "slow"
    capacity.take("dc", first)
    second = capacity.fit("dc", jobs[1])
    assert second is not None and capacity.pools["dc"][second[0][0]].model == "fast"
    assert capacity.speed("dc", second, jobs[1]) == pytest.approx(3.0)
    assert capacity.view_speed("dc", second, jobs[1]) == 1.0
    blind = compare(Scenario(jobs, mixed, speed_blind=True), ["nearest"])["nearest"]
    assert blind.jct_mean_h == pytest.approx((3.0 + 1.0) / 2, abs=0.02)


def test_inference_is_not_rescaled(mixed: Topology) -> None:
    serving = WorkloadJob(
        job_id="s", submit_s=0.0, kind="inference", accelerator="", count=2, duration_s=HOUR_S,
        origin="city", dataset_gb=0.0, user_region="city", latency_slo_ms=15.0, tenant="t",
    )  # fmt: skip
    capacity = Capacity(mixed)
    allocation = capacity.fit("dc", serving)
    assert allocation is not None and capacity.speed("dc", allocation, serving) == 1.0


@pytest.mark.usefixtures("traces_present")
def test_trace_training_accepts_the_training_parts_with_the_nearest_part_as_reference() -> None:
    topology = default_topology()
    jobs = load_workload("philly,alibaba-genai", topology, seed=0, limit=300).jobs
    parts = training_parts(topology)
    assert parts and not set(parts) & INFERENCE_PARTS
    training = [j for j in jobs if j.kind == "training"]
    assert training and all(j.accelerators == parts for j in training)
    # P100-era GPUs are slowest: the reference is the slowest training part by TFLOPS
    slowest = min(parts, key=lambda m: topology.accelerator(m).tflops_bf16)
    assert {j.reference for j in training} == {slowest}
    assert {j.workload for j in training} == {"vision-training"}
    inference = [j for j in jobs if j.kind == "inference"]
    assert inference and all(not j.accelerators and not j.reference for j in inference)
