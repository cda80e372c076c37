"""Energy, carbon and SLO of the demo's recorded placements, accounted as the simulator does."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from topology import Topology
from topology.energy import run_energy
from topology.pool_fit import Allocation, CardPool, allocation_watts, fit, pools_by_watts

DECISION_WINDOW_S = 60.0
KG_PER_TONNE = 1000.0
SLO_TOLERANCE_MS = 1e-9


@dataclass(frozen=True, slots=True)
class PlacedJob:
    """Where one finished demo job ran, with what the accounting needs (placements.json)."""

    job_id: str
    trace_job: str
    kind: str
    state: str
    site: str
    side: str
    accelerator: str
    count: int
    duration_hours: float
    submit_s: float
    start_hour: float
    origin: str
    user_region: str
    latency_slo_ms: float | None
    watts: float = 0.0
    kwh: float = 0.0
    energy_cny: float = 0.0
    carbon_kg: float = 0.0
    rtt_ms: float | None = None

    @property
    def card_hours(self) -> float:
        """Cards held times real hours."""
        return self.count * self.duration_hours

    def to_json(self) -> dict[str, Any]:
        """The record as written to placements.json."""
        return asdict(self)


def start_hour(submit_s: float) -> float:
    """CST hours since 00:00 of day 0 at which the job's run window starts: the end of the
    60 s decision window it arrived in, the simulator's convention for a job that need not
    wait (broker.simulate.clock.decision_instant)."""
    return math.ceil(submit_s / DECISION_WINDOW_S) * DECISION_WINDOW_S / 3600.0


class PoolLedger:
    """Cards in use per site pool over trace time, taken by the simulator's rule
    (topology.pool_fit): a gang takes the least power-hungry pool of an acceptable model that
    fits; inference replicas fill pools in that order."""

    def __init__(self, topology: Topology) -> None:
        self.pools: dict[str, tuple[CardPool, ...]] = {
            s.id: pools_by_watts(s) for s in topology.sites
        }
        self.free: dict[str, list[int]] = {
            site: [p.cards for p in pools] for site, pools in self.pools.items()
        }
        self.running: list[tuple[float, str, Allocation]] = []

    def release_until(self, hour: float) -> None:
        """Give back the cards of jobs that ended at or before `hour`."""
        keep = []
        for end, site, taken in self.running:
            if end <= hour:
                for k, n in taken:
                    self.free[site][k] += n
            else:
                keep.append((end, site, taken))
        self.running = keep

    def watts(self, job: PlacedJob) -> float:
        """Hold the job's cards from its start to its end and return their board power."""
        self.release_until(job.start_hour)
        pools, free = self.pools[job.site], self.free[job.site]
        taken = fit(pools, free, job.accelerator, job.count, gang=job.kind != "inference")
        if taken is None:  # busier than the trace model allows: price the cheapest usable pool
            usable = [k for k, p in enumerate(pools) if p.model == (job.accelerator or p.model)]
            taken = ((usable[0], job.count),) if usable else ()
        else:
            for k, n in taken:
                free[k] -= n
            self.running.append((job.start_hour + job.duration_hours, job.site, taken))
        return allocation_watts(pools, taken)


def account(jobs: Sequence[PlacedJob], topology: Topology) -> list[PlacedJob]:
    """Each job with its watts and energy by the simulator's model (topology.energy: kWh =
    watts x cards x hours x PUE / 1000, CNY over the site's hourly CST prices, carbon) and,
    for inference, the RTT to its users."""
    ledger = PoolLedger(topology)
    out = []
    for job in sorted(jobs, key=lambda j: (j.start_hour, j.submit_s, j.job_id)):
        watts = ledger.watts(job)
        used = run_energy(topology, job.site, watts, job.start_hour, job.duration_hours)
        rtt = topology.rtt_ms(job.user_region, job.site) if job.kind == "inference" else None
        out.append(
            replace(
                job,
                watts=watts,
                kwh=used.kwh,
                energy_cny=used.cny,
                carbon_kg=used.carbon_kg,
                rtt_ms=rtt,
            )
        )
    return out


def within_slo(job: PlacedJob) -> bool:
    """True if an inference job ran within its latency SLO of its users."""
    return (
        job.rtt_ms is not None
        and job.latency_slo_ms is not None
        and job.rtt_ms <= job.latency_slo_ms + SLO_TOLERANCE_MS
    )


@dataclass(frozen=True, slots=True)
class Totals:
    """The demo's own numbers over its accounted jobs."""

    energy_cny: float
    carbon_t: float
    slo_attainment: float | None
    inference_within_slo: int
    inference_jobs: int


def totals(jobs: Sequence[PlacedJob]) -> Totals:
    """Sum energy and carbon; SLO attainment as the simulator defines it (the fraction of
    inference card-hours within SLO)."""
    inference = [j for j in jobs if j.kind == "inference"]
    card_h = math.fsum(j.card_hours for j in inference)
    ok_h = math.fsum(j.card_hours for j in inference if within_slo(j))
    return Totals(
        energy_cny=math.fsum(j.energy_cny for j in jobs),
        carbon_t=math.fsum(j.carbon_kg for j in jobs) / KG_PER_TONNE,
        slo_attainment=ok_h / card_h if card_h > 0 else None,
        inference_within_slo=sum(within_slo(j) for j in inference),
        inference_jobs=len(inference),
    )
