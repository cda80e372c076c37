"""Per-policy outcome of a replay: energy, carbon, SLO, waits, utilisation, data and total cost."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from broker.placement import PolicyConfig
from broker.simulate.capacity import Capacity
from broker.simulate.clock import SECONDS_PER_HOUR, hours_since_day0
from broker.simulate.policy_base import BatchStats
from broker.simulate.replay import ReplayResult, Run
from computenet.spec import WORKLOAD_BY_KIND
from topology.energy import RunEnergy
from topology.energy import run_energy as energy_of

KG_PER_TONNE = 1000.0
GB_PER_TB = 1000.0


@dataclass(frozen=True, slots=True)
class PolicyMetrics:
    """The documented per-policy numbers (JSON keys of `simulate --json`), plus run counts."""

    energy_cny: float
    carbon_t: float
    slo_attainment: float | None
    wait_mean_h: float
    wait_p95_h: float
    utilization_east: float
    utilization_west: float
    data_moved_tb: float
    decision_ms_p50: float
    total_cost_cny: float
    lp_gap: float | None
    jobs: int
    stranded: int
    unplaceable: int
    wall_s: float
    migrations: int = 0
    migration_cost_cny: float = 0.0
    rebalance_runs: int = 0

    def to_json(self) -> dict[str, object]:
        """The policy's entry in the `policies` object of the JSON report."""
        return {
            "energy_cny": round(self.energy_cny, 2),
            "carbon_t": round(self.carbon_t, 4),
            "slo_attainment": None
            if self.slo_attainment is None
            else round(self.slo_attainment, 3),
            "wait_mean_h": round(self.wait_mean_h, 4),
            "wait_p95_h": round(self.wait_p95_h, 4),
            "utilization": {
                "east": round(self.utilization_east, 4),
                "west": round(self.utilization_west, 4),
            },
            "data_moved_tb": round(self.data_moved_tb, 4),
            "decision_ms_p50": round(self.decision_ms_p50, 4),
            "total_cost_cny": round(self.total_cost_cny, 2),
            "lp_gap": None if self.lp_gap is None else round(self.lp_gap, 6),
            "jobs": self.jobs,
        }


def run_energy(run: Run, capacity: Capacity) -> RunEnergy:
    """Energy of a run's cards over its actual CST window (the model of topology.energy)."""
    watts = capacity.watts(run.site, run.allocation)
    start_h = hours_since_day0(run.start_s)
    job = run.job
    workload = WORKLOAD_BY_KIND[job.kind]
    return energy_of(
        capacity.topology,
        run.site,
        watts,
        start_h,
        job.duration_h,
        cards=job.count,
        workload=workload,
    )


def _slo_met(run: Run, capacity: Capacity) -> bool:
    job = run.job
    slo = job.latency_slo_ms
    return slo is not None and capacity.topology.rtt_ms(job.user_region, run.site) <= slo + 1e-9


def summarise(
    result: ReplayResult, capacity: Capacity, config: PolicyConfig, batch: BatchStats | None
) -> PolicyMetrics:
    """Account a replay identically for every policy.

    Waits of jobs still queued at the end count up to the last instant. SLO attainment is the
    share of inference card-hours run at a site within the job's SLO RTT of its user region.
    Utilisation is card-hours used over card-hours offered by each side between the first
    submission and the last instant.
    """
    topology = capacity.topology
    runs = result.runs
    energy = carbon_kg = data_gb = 0.0
    used_h = {"east": 0.0, "west": 0.0}
    slo_ok_h = slo_all_h = 0.0
    for run in runs:
        used = run_energy(run, capacity)
        energy += used.cny
        carbon_kg += used.carbon_kg
        card_h = run.job.count * run.job.duration_h
        used_h[topology.site(run.site).side] += card_h
        if run.job.dataset_gb > 0 and run.job.origin != run.site:
            data_gb += run.job.dataset_gb
        if run.job.kind == "inference":
            slo_all_h += card_h
            slo_ok_h += card_h if _slo_met(run, capacity) else 0.0
    jobs = [run for run in runs if not run.resumed]  # a moved job's rest is no new job
    waits_h = [run.wait_s / SECONDS_PER_HOUR for run in jobs]
    waits_h += [max(0.0, result.end_s - job.submit_s) / SECONDS_PER_HOUR for job in result.stranded]
    wait_card_h = sum(run.job.count * run.wait_s for run in jobs) / SECONDS_PER_HOUR
    wait_card_h += (
        sum(job.count * max(0.0, result.end_s - job.submit_s) for job in result.stranded)
        / SECONDS_PER_HOUR
    )
    first_s = min((r.job.submit_s for r in runs), default=0.0)
    last_s = max([result.end_s, *(r.end_s for r in runs)])
    span_h = max(last_s - first_s, 0.0) / SECONDS_PER_HOUR
    carbon_t = carbon_kg / KG_PER_TONNE
    migration_cost = sum(m.cost_cny for m in result.migrations)
    return PolicyMetrics(
        energy_cny=energy,
        carbon_t=carbon_t,
        slo_attainment=100.0 * slo_ok_h / slo_all_h if slo_all_h > 0 else None,
        wait_mean_h=float(np.mean(waits_h)) if waits_h else 0.0,
        wait_p95_h=float(np.percentile(waits_h, 95)) if waits_h else 0.0,
        utilization_east=_share(used_h["east"], capacity.total_cards("east") * span_h),
        utilization_west=_share(used_h["west"], capacity.total_cards("west") * span_h),
        data_moved_tb=data_gb / GB_PER_TB,
        decision_ms_p50=float(np.median([r.decision_ms for r in jobs])) if jobs else 0.0,
        total_cost_cny=energy
        + carbon_t * config.carbon_price_cny_per_t
        + wait_card_h * config.accelerator_hour_value_cny
        + migration_cost,
        lp_gap=None if batch is None else batch.gap,
        jobs=len(jobs),
        stranded=len(result.stranded),
        unplaceable=len(result.unplaceable),
        wall_s=result.wall_s,
        migrations=len(result.migrations),
        migration_cost_cny=migration_cost,
        rebalance_runs=result.rebalance_runs,
    )


def _share(used: float, offered: float) -> float:
    return used / offered if offered > 0 and math.isfinite(offered) else 0.0
