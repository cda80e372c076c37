"""Per-policy outcome of a replay: energy, carbon, SLO, waits, utilisation, data and total cost."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from broker.placement import PolicyConfig
from broker.simulate.capacity import Capacity
from broker.simulate.clock import SECONDS_PER_HOUR, hours_since_day0
from broker.simulate.fairness import TenantsOutcome
from broker.simulate.load import OfferedLoad, Window, arrival_window
from broker.simulate.policy_base import BatchStats
from broker.simulate.replay import ReplayResult, Run
from computenet.spec import WORKLOAD_BY_KIND
from computenet.workload import WorkloadJob
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
    """Fraction in [0, 1] of inference card-hours run within SLO (None without inference)."""
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
    energy_kwh: float = 0.0
    jct_mean_h: float | None = None
    """Training jobs: mean submit -> finish hours (None without training)."""
    jct_p95_h: float | None = None
    utilization_overall: float = 0.0
    utilization_classes: Mapping[str, float] = field(default_factory=dict)
    tenants: TenantsOutcome | None = None
    """Per-tenant outcome and Jain's index (replays given a tenants table only)."""

    def to_json(self) -> dict[str, object]:
        """The policy's entry in the `policies` object of the JSON report."""
        return {
            "energy_cny": round(self.energy_cny, 2),
            "energy_kwh": round(self.energy_kwh, 1),
            "carbon_t": round(self.carbon_t, 4),
            "slo_attainment": _opt_round(self.slo_attainment, 4),
            "jct_mean_h": _opt_round(self.jct_mean_h, 4),
            "jct_p95_h": _opt_round(self.jct_p95_h, 4),
            "wait_mean_h": round(self.wait_mean_h, 4),
            "wait_p95_h": round(self.wait_p95_h, 4),
            "utilization": {
                "overall": round(self.utilization_overall, 4),
                "east": round(self.utilization_east, 4),
                "west": round(self.utilization_west, 4),
                "classes": {k: round(v, 4) for k, v in self.utilization_classes.items()},
            },
            "data_moved_tb": round(self.data_moved_tb, 4),
            "decision_ms_p50": round(self.decision_ms_p50, 4),
            "total_cost_cny": round(self.total_cost_cny, 2),
            "lp_gap": None if self.lp_gap is None else round(self.lp_gap, 6),
            "jobs": self.jobs,
            "still_queued": self.stranded,
            "too_large": self.unplaceable,
        }


def _opt_round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def workload_class(job: WorkloadJob) -> str:
    """The job's workload class: its own, else the spec's default for its kind."""
    return job.workload or WORKLOAD_BY_KIND[job.kind]


def run_energy(run: Run, capacity: Capacity) -> RunEnergy:
    """Energy of a run over its actual CST window by topology.energy (the placement engine's
    model): its cards at their workload's utilisation plus their host share, for its run time
    on those cards."""
    watts = capacity.watts(run.site, run.allocation)
    start_h = hours_since_day0(run.start_s)
    return energy_of(
        capacity.topology, run.site, watts, start_h, run.hours,
        cards=run.job.count, workload=workload_class(run.job),
    )  # fmt: skip


def _slo_met(run: Run, capacity: Capacity) -> bool:
    job = run.job
    slo = job.latency_slo_ms
    return slo is not None and capacity.topology.rtt_ms(job.user_region, run.site) <= slo + 1e-9


def summarise(
    result: ReplayResult,
    capacity: Capacity,
    config: PolicyConfig,
    batch: BatchStats | None,
    load: OfferedLoad | None = None,
) -> PolicyMetrics:
    """Account a replay identically for every policy.

    Waits (and training JCTs) of jobs still queued at the end count up to the last instant.
    SLO attainment is the fraction of inference card-hours run at a site within the job's SLO
    RTT of its user region. Utilisation is card-hours used inside the replay window (first to
    last arrival, `load.window`) over the card-hours offered in it, overall, by side and by the
    load's accelerator classes.
    """
    runs = result.runs
    energy = kwh = carbon_kg = data_gb = 0.0
    slo_ok_h = slo_all_h = 0.0
    for run in runs:
        spent = run_energy(run, capacity)
        energy += spent.cny
        kwh += spent.kwh
        carbon_kg += spent.carbon_kg
        card_h = run.job.count * run.hours
        if run.job.dataset_gb > 0 and run.job.origin != run.site:
            data_gb += run.job.dataset_gb
        if run.job.kind == "inference":
            slo_all_h += card_h
            slo_ok_h += card_h if _slo_met(run, capacity) else 0.0
    jobs = [run for run in runs if not run.resumed]  # a moved job's rest is no new job
    late = [max(0.0, result.end_s - job.submit_s) for job in result.stranded]
    waits_h = [run.wait_s / SECONDS_PER_HOUR for run in jobs] + [s / SECONDS_PER_HOUR for s in late]
    wait_card_h = sum(run.job.count * run.wait_s for run in jobs) / SECONDS_PER_HOUR
    wait_card_h += (
        sum(job.count * max(0.0, result.end_s - job.submit_s) for job in result.stranded)
        / SECONDS_PER_HOUR
    )
    jct_h = _training_jct_h(result)
    window = load.window if load is not None else arrival_window([r.job for r in jobs])
    used = _used_in_window(runs, capacity, window)
    carbon_t = carbon_kg / KG_PER_TONNE
    migration_cost = sum(m.cost_cny for m in result.migrations)
    classes = load.models if load is not None else {}
    return PolicyMetrics(
        energy_cny=energy,
        carbon_t=carbon_t,
        slo_attainment=slo_ok_h / slo_all_h if slo_all_h > 0 else None,
        wait_mean_h=float(np.mean(waits_h)) if waits_h else 0.0,
        wait_p95_h=float(np.percentile(waits_h, 95)) if waits_h else 0.0,
        utilization_east=_utilisation(used, capacity, window, side="east"),
        utilization_west=_utilisation(used, capacity, window, side="west"),
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
        energy_kwh=kwh,
        jct_mean_h=float(np.mean(jct_h)) if jct_h else None,
        jct_p95_h=float(np.percentile(jct_h, 95)) if jct_h else None,
        utilization_overall=_utilisation(used, capacity, window),
        utilization_classes=MappingProxyType(
            {
                name: _utilisation(used, capacity, window, models=models)
                for name, models in classes.items()
            }
        ),
    )


def _training_jct_h(result: ReplayResult) -> list[float]:
    """Submit -> finish hours of every training job (a moved job finishes with its last part)."""
    submit: dict[str, float] = {}
    finish: dict[str, float] = {}
    for run in result.runs:
        if run.job.kind != "training":
            continue
        if not run.resumed:
            submit[run.job.job_id] = run.job.submit_s
        finish[run.job.job_id] = max(finish.get(run.job.job_id, 0.0), run.end_s)
    out = [(finish[j] - s) / SECONDS_PER_HOUR for j, s in submit.items()]
    out += [
        max(0.0, result.end_s - job.submit_s) / SECONDS_PER_HOUR
        for job in result.stranded
        if job.kind == "training"
    ]
    return out


UsedCardHours = dict[tuple[str, str], float]
"""Card-hours inside the window by (site, model)."""


def _used_in_window(runs: Sequence[Run], capacity: Capacity, window: Window) -> UsedCardHours:
    used: UsedCardHours = {}
    for run in runs:
        inside_h = window.overlap_h(run.start_s, run.end_s)
        if inside_h <= 0:
            continue
        pools = capacity.pools[run.site]
        for k, n in run.allocation:
            key = (run.site, pools[k].model)
            used[key] = used.get(key, 0.0) + n * inside_h
    return used


def _utilisation(
    used: UsedCardHours,
    capacity: Capacity,
    window: Window,
    *,
    side: str | None = None,
    models: frozenset[str] | None = None,
) -> float:
    """Card-hours used in the window over card-hours offered, on one side and/or models."""
    topology = capacity.topology
    sites = {s.id for s in topology.sites if side is None or s.side == side}
    busy = sum(
        hours
        for (site, model), hours in used.items()
        if site in sites and (models is None or model in models)
    )
    cards = sum(
        p.cards
        for site in sites
        for p in capacity.pools[site]
        if models is None or p.model in models
    )
    return _share(busy, cards * window.hours)


def _share(used: float, offered: float) -> float:
    return used / offered if offered > 0 and math.isfinite(offered) else 0.0
